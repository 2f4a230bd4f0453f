// Host update page: make a plan, start the update after a confirmation, follow the run's steps.
import { api, errorMessage, toast } from "/ui/static/js/app.js";

const BASE = "/api/v1/hostops/update";
const $ = (id) => document.getElementById(id);

async function waitTask(taskId) {
  for (;;) {
    const answer = await api("GET", `/api/v1/tasks/${taskId}`);
    if (!answer.ok) throw new Error(errorMessage(answer.data, answer.status));
    if (!["queued", "running"].includes(answer.data.state)) return answer.data;
    await new Promise((done) => setTimeout(done, 1000));
  }
}

function showRun(run) {
  $("update-run").dataset.run = run.id;
  $("run-state").textContent = `run ${run.id}: ${run.state}${run.step ? ` (step ${run.step})` : ""}`;
  $("run-error").textContent = run.error || "";
  const list = $("run-steps");
  list.replaceChildren(...run.steps.map((step) => {
    const item = document.createElement("li");
    item.className = `step-${step.state}`;
    item.textContent = `${step.step}: ${step.state}: ${step.message}`;
    return item;
  }));
  const stopped = run.state === "failed";
  $("resume-run").hidden = !stopped;
  $("abort-run").hidden = !stopped;
}

async function refreshRun() {
  const answer = await api("GET", `${BASE}/runs`);
  if (answer.ok && answer.data.length) showRun(answer.data[0]);
  return answer.ok && answer.data.length ? answer.data[0] : null;
}

// Follow the task working on the run: the run's steps are shown as they arrive, until the task
// ends (a reboot in between only makes the answers wait).
async function follow(taskId) {
  for (;;) {
    await refreshRun();
    const answer = await api("GET", `/api/v1/tasks/${taskId}`);
    if (answer.ok && !["queued", "running"].includes(answer.data.state)) {
      await refreshRun();
      return answer.data;
    }
    await new Promise((done) => setTimeout(done, 1500));
  }
}

async function submit(path, body) {
  const answer = await api("POST", `${BASE}${path}`, body);
  if (!answer.ok) {
    toast(errorMessage(answer.data, answer.status), { level: "error" });
    return null;
  }
  return answer.data;
}

$("make-plan").addEventListener("click", async () => {
  $("plan-state").textContent = "planning…";
  const accepted = await submit("/plan");
  if (!accepted) return;
  const task = await waitTask(accepted.task_id);
  location.reload();
  return task;
});

$("start-update").addEventListener("click", async () => {
  const plan = $("plan-text").textContent;
  if (!window.confirm(`Update the host now?\n\n${plan}`)) return;
  const accepted = await submit("/run", { confirm: true });
  if (accepted) {
    toast(`host update started (task ${accepted.task_id})`);
    await follow(accepted.task_id);
  }
});

for (const [id, verb] of [["resume-run", "resume"], ["abort-run", "abort"]]) {
  $(id).addEventListener("click", async () => {
    const run = $("update-run").dataset.run;
    const what = verb === "resume" ? "Retry the failed step and go on with the update?"
      : "Stop updating and bring the VMs and services back?";
    if (!run || !window.confirm(what)) return;
    const accepted = await submit(`/runs/${run}/${verb}`);
    if (accepted) await follow(accepted.task_id);
  });
}

// A run already going when the page opens: follow its task.
const running = document.getElementById("update-run").dataset.task;
if (running && $("run-state").textContent.includes(": running")) follow(running);
