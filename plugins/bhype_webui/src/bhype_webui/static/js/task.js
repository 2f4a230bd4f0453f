// A task's page follows its progress and log live (/api/v1/tasks/{id}/stream) until it ends.
import { watchStream } from "./app.js";

const root = document.getElementById("task");

function addLine(line) {
  const item = document.createElement("li");
  item.className = `lvl-${line.level}`;
  const time = document.createElement("time");
  time.dateTime = line.time;
  time.textContent = new Date(line.time).toISOString().replace("T", " ").replace(/\.\d+Z$/, " UTC");
  item.append(time, ` ${line.message}`);
  document.getElementById("task-log").append(item);
}

function setProgress({ state, progress, message }) {
  const percent = Math.round(progress);
  document.getElementById("task-progress").value = percent;
  document.getElementById("task-percent").textContent = `${percent} %`;
  document.getElementById("task-message").textContent = message;
  const badge = document.querySelector("#task-state .task-state");
  badge.textContent = state;
  badge.className = `task-state task-${state}`;
}

if (root && root.dataset.final !== "true" && window.EventSource) {
  let seen = parseInt(root.dataset.lastSeq, 10) || 0;
  const source = watchStream(new EventSource(`/api/v1/tasks/${encodeURIComponent(root.dataset.taskId)}/stream`));
  source.addEventListener("log", (event) => {
    const line = JSON.parse(event.data);
    if (line.seq <= seen) return; // already on the page
    seen = line.seq;
    addLine(line);
  });
  source.addEventListener("progress", (event) => setProgress(JSON.parse(event.data)));
  source.addEventListener("end", () => {
    source.close();
    location.reload(); // the finished task's result, error and buttons come from the server
  });
}
