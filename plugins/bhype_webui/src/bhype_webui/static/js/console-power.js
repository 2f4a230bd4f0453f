// The console pages' power buttons and full-screen button: the same API calls as the VM page
// (POST /api/v1/vms/{name}/start|stop|force-stop), a stop asked for in a dialog first.
import { api } from "/ui/static/js/console-common.js";

const vm = document.body.dataset.vm;
const status = document.getElementById("power-status");
// Tests and people's browser consoles read the last answer here.
const power = (window.bhypePower = { last: null });

function ask(text) {
  const dialog = document.getElementById("confirm");
  if (!dialog || !dialog.showModal) return Promise.resolve(window.confirm(text));
  dialog.querySelector("#confirm-text").textContent = text;
  dialog.returnValue = "";
  dialog.showModal();
  dialog.querySelector("#confirm-ok").focus();
  return new Promise((resolve) => dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true }));
}

async function press(button) {
  if (button.dataset.confirm && !(await ask(button.dataset.confirm))) return;
  button.disabled = true;
  try {
    const answer = await api(`/api/v1/vms/${encodeURIComponent(vm)}/${button.dataset.power}`, { method: "POST" });
    power.last = answer;
    status.textContent = button.dataset.done;
    status.className = "state-ok";
  } catch (error) {
    status.textContent = error.message;
    status.className = "state-error";
  } finally {
    button.disabled = false;
  }
}

document.querySelectorAll("button[data-power]").forEach((button) => button.addEventListener("click", () => press(button)));
document.getElementById("fullscreen")?.addEventListener("click", () => {
  if (document.fullscreenElement) document.exitFullscreen();
  else document.documentElement.requestFullscreen?.().catch(() => {});
});
