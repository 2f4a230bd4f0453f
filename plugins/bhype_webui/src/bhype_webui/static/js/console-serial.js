// The serial console page: xterm.js (from npm @xterm/xterm) over bHype's ticketed bridge.
import { requestTicket, showStatus, websocketUrl } from "/ui/static/js/console-common.js";

const vm = document.body.dataset.vm;
const term = new window.Terminal({ convertEol: false, cursorBlink: true, scrollback: 5000 });
const fit = new window.FitAddon.FitAddon();
term.loadAddon(fit);
term.open(document.getElementById("terminal"));
fit.fit();
window.addEventListener("resize", () => fit.fit());
// Tests and people's browser consoles read the state here.
const state = (window.bhypeSerial = { state: "connecting", received: 0, term });

async function connect() {
  let ticket;
  try {
    ticket = await requestTicket(vm, "serial");
  } catch (error) {
    state.state = "refused";
    showStatus(`Cannot open the console: ${error.message}`, false);
    return;
  }
  const socket = new WebSocket(websocketUrl(ticket.websocket));
  socket.binaryType = "arraybuffer";
  const encoder = new TextEncoder();
  socket.addEventListener("open", () => {
    state.state = "connected";
    showStatus("Connected");
    term.focus();
  });
  socket.addEventListener("message", (event) => {
    const bytes = new Uint8Array(event.data);
    state.received += bytes.length;
    if (bytes.length) document.getElementById("serial-hint").hidden = true; // the guest spoke
    term.write(bytes);
  });
  socket.addEventListener("close", (event) => {
    state.state = "disconnected";
    showStatus(`Disconnected${event.reason ? ": " + event.reason : ""}`, false);
  });
  term.onData((text) => socket.readyState === WebSocket.OPEN && socket.send(encoder.encode(text)));
}

connect();
