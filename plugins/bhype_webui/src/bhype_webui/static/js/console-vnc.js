// The VNC console page: noVNC (from npm @novnc/novnc) connected through bHype's ticketed bridge.
import RFB from "/ui/static/vendor/novnc/core/rfb.js";
import { api, requestTicket, showStatus, websocketUrl } from "/ui/static/js/console-common.js";

const vm = document.body.dataset.vm;
const base = `/api/v1/webui/consoles/${encodeURIComponent(vm)}/vnc`;
// Tests and people's browser consoles read the state here.
const state = (window.bhypeConsole = { state: "connecting", viewerId: null, inControl: false, reason: "" });

async function refreshViewers() {
  const list = await api(`${base}/viewers`);
  const me = list.viewers.find((v) => v.id === state.viewerId);
  state.inControl = Boolean(me && me.in_control);
  if (state.rfb) state.rfb.viewOnly = !state.inControl;
  const holder = list.viewers.find((v) => v.in_control);
  document.getElementById("control").textContent = state.inControl
    ? "You are in control."
    : holder ? `${holder.user} is in control.` : "Nobody is in control.";
  document.getElementById("take-control").hidden = state.inControl;
  const items = list.viewers.map((v) => {
    const li = document.createElement("li");
    li.textContent = `${v.user}${v.admin ? " (admin)" : ""}${v.in_control ? " · in control" : ""}${v.id === state.viewerId ? " · you" : ""}`;
    return li;
  });
  document.getElementById("viewers").replaceChildren(...items);
}

async function connect() {
  let ticket;
  try {
    ticket = await requestTicket(vm, "vnc");
  } catch (error) {
    state.state = "refused";
    showStatus(`Cannot open the console: ${error.message}`, false);
    return;
  }
  state.viewerId = ticket.viewer_id;
  const rfb = new RFB(document.getElementById("screen"), websocketUrl(ticket.websocket), { shared: true });
  state.rfb = rfb;
  applyScale(rfb);
  // noVNC's clipboard event: the guest's clipboard text (RFB ServerCutText).
  rfb.addEventListener("clipboard", (event) => { document.getElementById("clipboard").value = event.detail.text; });
  rfb.addEventListener("connect", () => {
    state.state = "connected";
    showStatus("Connected");
    document.getElementById("ctrl-alt-del").disabled = false;
    document.getElementById("clipboard-send").disabled = false;
    rfb.focus();
    refreshViewers().catch(() => {});
  });
  rfb.addEventListener("disconnect", (event) => {
    state.state = "disconnected";
    state.reason = event.detail.clean ? "" : "connection lost";
    showStatus(`Disconnected${state.reason ? ": " + state.reason : ""}`, false);
    document.getElementById("ctrl-alt-del").disabled = true;
    document.getElementById("clipboard-send").disabled = true;
  });
}

// noVNC's own display options: scaleViewport fits the screen to the window, resizeSession asks
// the guest to change its resolution to the window's (where the server supports it).
function applyScale(rfb) {
  const how = document.getElementById("scale").value;
  rfb.scaleViewport = how === "fit";
  rfb.resizeSession = how === "remote";
  state.scale = how;
}

document.getElementById("scale").addEventListener("change", () => state.rfb && applyScale(state.rfb));
document.getElementById("clipboard-send").addEventListener("click", () => {
  if (state.rfb) state.rfb.clipboardPasteFrom(document.getElementById("clipboard").value);
});

document.getElementById("take-control").addEventListener("click", async () => {
  try {
    await api(`${base}/control`, { method: "POST", body: JSON.stringify({ viewer_id: state.viewerId }) });
  } catch (error) {
    showStatus(`Cannot take control: ${error.message}`, false);
  }
  await refreshViewers().catch(() => {});
});
document.getElementById("ctrl-alt-del").addEventListener("click", () => state.rfb && state.rfb.sendCtrlAltDel());
setInterval(() => state.state === "connected" && refreshViewers().catch(() => {}), 2000);
connect();
