// The Backups page and a VM's Backups tab: progress bars fed by each running task's live stream,
// and the buttons (run a job, verify, restore), each one call to the JSON API.
import { api, errorMessage, toast, watchStream } from "/ui/static/js/app.js";

function follow(item) {
  if (!window.EventSource) return;
  const id = item.dataset.taskId;
  const source = watchStream(new EventSource(`/api/v1/tasks/${encodeURIComponent(id)}/stream`));
  source.addEventListener("progress", (event) => {
    const { progress, message } = JSON.parse(event.data);
    const percent = Math.round(progress);
    item.querySelector("progress").value = percent;
    item.querySelector(".backup-percent").textContent = `${percent} %`;
    item.querySelector(".backup-message").textContent = message || "";
  });
  source.addEventListener("end", () => {
    source.close();
    item.classList.add("backup-ended");
  });
}

async function submit(method, url, body, what) {
  const { ok, status, data } = await api(method, url, body);
  if (!ok) {
    toast(`${what}: ${errorMessage(data, status)}`, { level: "error" });
    return;
  }
  toast(`${what}: queued`, { href: `/ui/tasks/${data.task_id}`, linkText: "Follow" });
  setTimeout(() => location.reload(), 800); // the new task shows with its progress bar
}

document.querySelectorAll(".backup-task").forEach(follow);

document.addEventListener("click", (event) => {
  const button = event.target.closest("button");
  if (!button || !button.closest("#backups")) return;
  const point = button.dataset.point;
  if (button.classList.contains("backup-job-run")) {
    submit("POST", `/api/v1/backup/jobs/${encodeURIComponent(button.dataset.job)}/run`, undefined,
      `job ${button.dataset.job}`);
  } else if (button.classList.contains("backup-verify")) {
    submit("POST", `/api/v1/backup/points/${point}/verify`, undefined, `verify of point ${point}`);
  } else if (button.classList.contains("backup-restore-as")) {
    const name = button.closest("tr").querySelector(".backup-as").value.trim();
    if (!name) {
      toast("give the new VM's name", { level: "warning" });
      return;
    }
    submit("POST", `/api/v1/backup/points/${point}/restore`, { as: name, confirm: false }, `restore of point ${point}`);
  } else if (button.classList.contains("backup-restore-here")) {
    if (!window.confirm(`Replace the disks of ${button.dataset.vm} with point ${point}? The VM must be stopped.`)) return;
    submit("POST", `/api/v1/backup/points/${point}/restore`, { as: null, confirm: true }, `restore of point ${point}`);
  }
});
