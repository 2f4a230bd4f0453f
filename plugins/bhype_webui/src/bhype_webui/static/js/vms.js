// The VM list and a VM's page follow state changes live (/api/v1/webui/vms/stream).
import { applyState, watchStream } from "./app.js";

const list = () => document.getElementById("vm-table");
const page = document.getElementById("vm-page");

function setBadge(badge, state, detail) {
  badge.textContent = state;
  badge.className = `state state-${state}`;
  badge.dataset.state = state;
  if (detail) badge.title = detail; else badge.removeAttribute("title");
}

function update(vm) {
  if (page) {
    if (page.dataset.vmName !== vm.name) return;
    setBadge(page.querySelector("h1 .state"), vm.state, vm.state_detail);
    page.querySelector("[data-state-detail]").textContent = vm.state_detail || "";
    applyState(page, vm.state);
    const active = ["starting", "running", "stopping"].includes(vm.state);
    const offline = page.querySelector("fieldset[data-offline]");
    if (offline) offline.disabled = active;
    const note = page.querySelector("[data-offline-note]");
    if (note) note.hidden = !active;
    refreshTasks();
    return;
  }
  const row = list()?.querySelector(`tr[data-vm-name="${CSS.escape(vm.name)}"]`);
  if (!row) return;
  setBadge(row.querySelector(".state"), vm.state, vm.state_detail);
  applyState(row, vm.state);
}

// A VM's task history follows too: after an action, a state change or a notification.
let pending = null;
function refreshTasks() {
  if (!page || !window.htmx || !document.getElementById("vm-tasks")) return;
  clearTimeout(pending);
  pending = setTimeout(() => {
    window.htmx.ajax("GET", location.pathname, { target: "#vm-tasks", select: "#vm-tasks", swap: "outerHTML" });
  }, 300);
}

function refreshList() {
  const table = list();
  if (table && window.htmx) {
    window.htmx.ajax("GET", location.pathname + location.search, { target: "#vm-table", swap: "outerHTML" });
  }
}

function start() {
  const root = page || list();
  if (!root || !window.EventSource) return;
  const params = new URLSearchParams();
  if (root.dataset.since) params.set("since", root.dataset.since);
  if (page) params.set("name", page.dataset.vmName);
  const source = watchStream(new EventSource(`/api/v1/webui/vms/stream?${params}`));
  source.addEventListener("vm", (event) => update(JSON.parse(event.data)));
  source.addEventListener("count", refreshList);
  window.bhypeVmStream = source; // tests and curious admins can see that the page is live
}

start();
document.addEventListener("bhype:done", refreshTasks);
document.addEventListener("bhype:notification", refreshTasks);
