// Services: after an action (or Refresh) is queued, follow its task on the core's live task
// stream (/api/v1/tasks/{id}/stream, as a task's page does) and, when it ends, redraw the table
// from the server with the state the task stored; a failed task says so in a toast.
import { toast, watchStream } from "/ui/static/js/app.js";

const following = new Map(); // task id -> EventSource

async function redraw() {
  const response = await fetch(location.pathname, { credentials: "same-origin" });
  if (!response.ok) return;
  const fresh = new DOMParser().parseFromString(await response.text(), "text/html").querySelector("#services tbody");
  const body = document.querySelector("#services tbody");
  if (fresh && body) body.replaceWith(document.importNode(fresh, true));
}

function follow(taskId, row, label) {
  if (!window.EventSource || following.has(taskId)) return;
  if (row) {
    row.classList.add("busy");
    row.setAttribute("aria-busy", "true");
    row.querySelector(".state").textContent = `${label}…`;
  }
  const source = watchStream(new EventSource(`/api/v1/tasks/${encodeURIComponent(taskId)}/stream`));
  following.set(taskId, source);
  source.addEventListener("end", async (event) => {
    source.close();
    following.delete(taskId);
    const task = event.data ? JSON.parse(event.data) : null;
    if (task && task.state !== "succeeded") {
      const why = (task.error && task.error.message) || task.state;
      toast(`${label}: ${why}`, { level: "error", sticky: true, href: `/ui/tasks/${encodeURIComponent(taskId)}`,
                                  linkText: "Task log" });
    }
    await redraw(); // whatever the outcome: the row shows what the worker saw last
  });
}

document.addEventListener("bhype:done", (event) => {
  const button = event.target.closest("#services-page [data-api]");
  const taskId = event.detail && event.detail.task_id;
  if (!button || !taskId) return;
  follow(taskId, button.closest("tr[data-service]"), button.textContent.trim() +
         (button.closest("tr[data-service]") ? ` ${button.closest("tr[data-service]").dataset.service}` : ""));
});
