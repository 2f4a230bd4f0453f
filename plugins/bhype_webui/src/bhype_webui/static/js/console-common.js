// Shared by the console pages: the CSRF token, console tickets, WebSocket URLs, status text.

export function csrfToken() {
  const name = document.body.dataset.csrfCookie + "=";
  const cookie = document.cookie.split("; ").find((c) => c.startsWith(name));
  return cookie ? decodeURIComponent(cookie.slice(name.length)) : "";
}

export async function api(path, options = {}) {
  const headers = { "X-CSRF-Token": csrfToken(), ...(options.body ? { "Content-Type": "application/json" } : {}) };
  const response = await fetch(path, { credentials: "same-origin", ...options, headers });
  const body = await response.json().catch(() => ({}));
  if (!response.ok) {
    const message = (body.error && body.error.message) || body.message || body.detail;
    throw new Error(message || `${response.status} ${response.statusText}`);
  }
  return body;
}

// A single-use ticket for this page's console (30 s to open the WebSocket with it).
export function requestTicket(vm, kind) {
  return api(`/api/v1/webui/consoles/${encodeURIComponent(vm)}/${kind}/ticket`, { method: "POST" });
}

export function websocketUrl(path) {
  const scheme = location.protocol === "https:" ? "wss:" : "ws:";
  return `${scheme}//${location.host}${path}`;
}

export function showStatus(text, ok = true) {
  const status = document.getElementById("status");
  status.textContent = text;
  status.className = ok ? "state-ok" : "state-error";
}
