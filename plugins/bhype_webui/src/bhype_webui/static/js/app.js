// bHype pages: the CSRF token, API calls, popups (toasts), live notifications, and the forms
// and buttons that call the JSON API (every change goes through it: same checks as scripts).

export function csrfToken() {
  const name = (document.body.dataset.csrfCookie || "bhype_session_csrf") + "=";
  const cookie = document.cookie.split("; ").find((c) => c.startsWith(name));
  return cookie ? decodeURIComponent(cookie.slice(name.length)) : "";
}

export function toLogin(expired = true) {
  const next = location.pathname + location.search;
  location.href = `/ui/login?next=${encodeURIComponent(next)}${expired ? "&expired=1" : ""}`;
}

// One API call with the session cookie and CSRF header. A 401 means the login ended: go log in.
export async function api(method, url, body) {
  const headers = { "X-CSRF-Token": csrfToken(), Accept: "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(url, {
    method, headers, credentials: "same-origin", body: body === undefined ? undefined : JSON.stringify(body),
  });
  const data = response.status === 204 ? {} : await response.json().catch(() => ({}));
  if (response.status === 401) {
    toLogin(true);
    throw new Error("not logged in");
  }
  return { ok: response.ok, status: response.status, data };
}

export function errorMessage(data, status) {
  return (data && data.error && data.error.message) || `request failed (${status})`;
}

// --- popups -----------------------------------------------------------------------------------

export function toast(message, { level = "info", href = "", linkText = "Open", sticky = false } = {}) {
  const box = document.getElementById("toasts");
  if (!box) return null;
  const item = document.createElement("div");
  item.className = `toast sev-${level}`;
  item.setAttribute("role", level === "error" || level === "critical" ? "alert" : "status");
  const text = document.createElement("p");
  text.textContent = message;
  item.append(text);
  if (href) {
    const link = document.createElement("a");
    link.href = href;
    link.textContent = linkText;
    item.append(link);
  }
  const close = document.createElement("button");
  close.type = "button";
  close.className = "close";
  close.setAttribute("aria-label", "Dismiss");
  close.textContent = "×";
  close.addEventListener("click", () => item.remove());
  item.append(close);
  box.append(item);
  if (!sticky) setTimeout(() => item.remove(), 8000);
  return item;
}

function taskLink(data) {
  const id = data && (data.task_id || (data.kind && data.id && data.state ? data.id : ""));
  return id ? `/ui/tasks/${encodeURIComponent(id)}` : "";
}

// --- live notifications -----------------------------------------------------------------------

function setUnread(change) {
  const badge = document.getElementById("unread");
  if (!badge) return;
  const count = Math.max(0, (parseInt(badge.textContent, 10) || 0) + change);
  badge.textContent = String(count);
  badge.classList.toggle("zero", count === 0);
  badge.setAttribute("aria-label", `${count} unread`);
}

// A stream that fails to connect (401 after a logout elsewhere) sends the page to the login.
export function watchStream(source) {
  source.addEventListener("logout", () => toLogin(true));
  source.addEventListener("error", async () => {
    if (source.readyState !== EventSource.CLOSED) return;
    const me = await fetch("/api/v1/auth/me", { credentials: "same-origin" }).catch(() => null);
    if (me && me.status === 401) toLogin(true);
  });
  return source;
}

function notificationLink(note) {
  const task = note.data && note.data.task_id;
  if (task) return `/ui/tasks/${encodeURIComponent(task)}`;
  const [kind, name] = (note.subject || "").split(/:(.*)/s);
  return kind === "vm" && name ? `/ui/vms/${encodeURIComponent(name)}` : "";
}

function startNotifications() {
  const after = document.body.dataset.notifyAfter;
  if (after === undefined || !window.EventSource) return;
  const source = watchStream(new EventSource(`/api/v1/webui/notifications/stream?after=${encodeURIComponent(after)}`));
  source.addEventListener("notification", (event) => {
    const note = JSON.parse(event.data);
    const serious = note.severity === "error" || note.severity === "critical";
    toast(note.message, { level: note.severity, href: notificationLink(note), linkText: "Details", sticky: serious });
    setUnread(1);
    document.dispatchEvent(new CustomEvent("bhype:notification", { detail: note }));
  });
}

// --- forms that call the API ------------------------------------------------------------------

function setPath(target, path, value) {
  const keys = path.split(".");
  let node = target;
  keys.forEach((key, index) => {
    const last = index === keys.length - 1;
    const nextIsIndex = !last && /^\d+$/.test(keys[index + 1]);
    const slot = /^\d+$/.test(key) ? Number(key) : key;
    if (last) node[slot] = value;
    else node = node[slot] ?? (node[slot] = nextIsIndex ? [] : {});
  });
}

// The form's fields as JSON: dotted names nest ("spec.disks.0.size"), data-type converts, empty
// fields are left out (the server's defaults apply) unless marked data-keep-empty or data-empty.
export function formToJson(form) {
  const body = {};
  for (const field of form.elements) {
    if (!field.name || field.name.startsWith("_") || field.disabled || field.closest("fieldset:disabled")) continue;
    if (field.type === "radio" && !field.checked) continue;
    if (field.type === "file" || field.type === "submit" || field.type === "button") continue;
    const type = field.dataset.type || "";
    let value = field.value;
    if (type === "bool") value = field.checked;
    else if (value === "") {
      if (field.dataset.empty === "null") value = null;
      else if (type === "list" && "keepEmpty" in field.dataset) value = [];
      else if (!("keepEmpty" in field.dataset)) continue;
    } else if (type === "int") value = Number(value);
    else if (type === "list") value = value.split(",").map((v) => v.trim()).filter(Boolean);
    else if (type === "lines") value = value.split("\n").map((v) => v.trim()).filter(Boolean);
    setPath(body, field.name, value);
  }
  return body;
}

export function clearErrors(form) {
  form.querySelectorAll("[data-error-for]").forEach((span) => { span.hidden = true; span.textContent = ""; });
  form.querySelectorAll("[aria-invalid]").forEach((input) => input.removeAttribute("aria-invalid"));
  const general = form.querySelector("[data-form-error]");
  if (general) { general.hidden = true; general.textContent = ""; }
}

// Put each of the API's 422 field errors next to its input: the input whose path is the longest
// prefix of the error's path ("spec.cpus.count" → "spec.cpus"); the rest go to the form's box.
export function showErrors(form, data, status, prefix = "") {
  const spans = [...form.querySelectorAll("[data-error-for]")];
  const leftover = [];
  const fields = (data && data.error && data.error.fields) || [];
  let first = null;
  for (const item of fields) {
    let path = item.path.replace(/^body\./, "");
    if (prefix && path.startsWith(prefix)) path = path.slice(prefix.length);
    const span = spans
      .filter((s) => path === s.dataset.errorFor || path.startsWith(s.dataset.errorFor + "."))
      .sort((a, b) => b.dataset.errorFor.length - a.dataset.errorFor.length)[0];
    if (!span || span.closest("fieldset:disabled")) { leftover.push(`${item.path}: ${item.message}`); continue; }
    span.textContent = span.textContent ? `${span.textContent}; ${item.message}` : item.message;
    span.hidden = false;
    const input = span.closest(".field, form")?.querySelector("input, select, textarea");
    if (input) { input.setAttribute("aria-invalid", "true"); first = first || input; }
  }
  const general = form.querySelector("[data-form-error]");
  const message = fields.length ? leftover.join("; ") : errorMessage(data, status);
  if (message && general) { general.textContent = message; general.hidden = false; }
  else if (message) toast(message, { level: "error" });
  (first || general)?.focus?.();
}

async function submitApiForm(form) {
  const [method, url] = form.dataset.apiForm.split(" ");
  clearErrors(form);
  const button = form.querySelector('[type="submit"]');
  if (button) button.disabled = true;
  try {
    const { ok, status, data } = await api(method, url, formToJson(form));
    if (!ok) { showErrors(form, data, status, form.dataset.errorPrefix || ""); return; }
    form.dispatchEvent(new CustomEvent("bhype:done", { detail: data, bubbles: true }));
    const href = taskLink(data);
    if ("follow" in form.dataset && href) { location.href = href; return; }
    if (form.dataset.done) toast(form.dataset.done, { level: "info", href, linkText: "Follow the task" });
    if ("reload" in form.dataset) location.reload();
  } catch (error) {
    toast(String(error.message || error), { level: "error" });
  } finally {
    if (button) button.disabled = false;
  }
}

// --- buttons that call the API ----------------------------------------------------------------

function confirmDialog(button) {
  const dialog = document.getElementById("confirm");
  if (!dialog || !dialog.showModal) return Promise.resolve({ ok: window.confirm(button.dataset.confirm), checked: false });
  const word = button.dataset.confirmType || "";
  const check = button.dataset.confirmCheck || "";
  dialog.querySelector("#confirm-text").textContent = button.dataset.confirm;
  dialog.querySelector("#confirm-type").hidden = !word;
  dialog.querySelector("#confirm-word").textContent = word;
  const input = dialog.querySelector("#confirm-input");
  input.value = "";
  dialog.querySelector("#confirm-extra").hidden = !check;
  dialog.querySelector("#confirm-check").checked = false;
  dialog.querySelector("#confirm-check-label").textContent = button.dataset.confirmCheckLabel || "";
  const ok = dialog.querySelector("#confirm-ok");
  ok.textContent = button.textContent.trim() || "Confirm";
  ok.disabled = Boolean(word);
  input.oninput = () => { ok.disabled = Boolean(word) && input.value !== word; };
  dialog.returnValue = "";
  dialog.showModal();
  (word ? input : ok).focus();
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve({
      ok: dialog.returnValue === "ok" && (!word || input.value === word),
      checked: dialog.querySelector("#confirm-check").checked,
    }), { once: true });
  });
}

async function runApiButton(button) {
  let [method, url] = button.dataset.api.split(" ");
  if (button.dataset.confirm) {
    const answer = await confirmDialog(button);
    if (!answer.ok) return;
    if (answer.checked && button.dataset.confirmCheck) {
      url += `${url.includes("?") ? "&" : "?"}${encodeURIComponent(button.dataset.confirmCheck)}=true`;
    }
  }
  button.disabled = true;
  button.setAttribute("aria-busy", "true");
  try {
    const body = button.dataset.body ? JSON.parse(button.dataset.body) : undefined;
    const { ok, status, data } = await api(method, url, body);
    if (!ok) { toast(errorMessage(data, status), { level: "error", sticky: true }); return; }
    button.dispatchEvent(new CustomEvent("bhype:done", { detail: data, bubbles: true }));
    const href = taskLink(data);
    if ("follow" in button.dataset && href) { location.href = href; return; }
    // An answer without a task (an image already in the library) says what happened itself.
    toast((!href && data && data.message) || button.dataset.done || "Done", { href, linkText: "Follow the task" });
    if ("reload" in button.dataset) location.reload();
  } catch (error) {
    toast(String(error.message || error), { level: "error" });
  } finally {
    button.removeAttribute("aria-busy");
    const when = button.dataset.when;
    const state = button.closest("[data-current-state]")?.dataset.currentState;
    button.disabled = Boolean(when && state && !when.split(" ").includes(state));
  }
}

// Enable the controls of ``root`` that fit the VM state ``state`` (data-when="running stopped").
export function applyState(root, state) {
  root.dataset.currentState = state;
  root.querySelectorAll("[data-when]").forEach((control) => {
    const allowed = control.dataset.when.split(" ").includes(state);
    if (control.tagName === "A") {
      control.classList.toggle("disabled", !allowed);
      if (allowed) { control.removeAttribute("aria-disabled"); control.removeAttribute("tabindex"); }
      else { control.setAttribute("aria-disabled", "true"); control.setAttribute("tabindex", "-1"); }
    } else if (!control.hasAttribute("aria-busy")) {
      control.disabled = !allowed;
    }
  });
}

// --- wiring -----------------------------------------------------------------------------------

document.addEventListener("submit", (event) => {
  const form = event.target.closest("form[data-api-form]");
  if (!form) return;
  event.preventDefault();
  submitApiForm(form);
});

document.addEventListener("click", (event) => {
  const disabledLink = event.target.closest("a.disabled");
  if (disabledLink) { event.preventDefault(); return; }
  const button = event.target.closest("button[data-api]");
  if (button && !button.disabled) { runApiButton(button); return; }
  if (event.target.closest("[data-logout]")) {
    api("POST", "/api/v1/auth/logout").finally(() => { location.href = "/ui/login?logged_out=1"; });
    return;
  }
  const copy = event.target.closest("[data-copy]");
  if (copy) {
    const field = document.getElementById(copy.dataset.copy);
    field.select();
    navigator.clipboard?.writeText(field.value).then(() => toast("Copied"), () => document.execCommand("copy"));
  }
});

// Radio buttons that show one group of fields and disable the others (disabled fields are not sent).
document.addEventListener("change", (event) => {
  const radio = event.target.closest("input[type=radio][data-shows]");
  if (!radio) return;
  document.querySelectorAll(`input[type=radio][name="${radio.name}"][data-shows]`).forEach((other) => {
    const group = other.dataset.shows && document.getElementById(other.dataset.shows);
    if (group) { group.disabled = !other.checked; group.hidden = !other.checked; }
  });
});

// The token form shows the new secret once instead of following a task.
document.addEventListener("bhype:done", (event) => {
  if (!event.target.matches("[data-token-form]")) return;
  const box = document.getElementById("new-token");
  document.getElementById("token-secret").value = event.detail.token;
  box.hidden = false;
  box.focus();
  event.target.reset();
  // The list gains the new token; the page is not reloaded, which would lose the secret.
  window.htmx?.ajax("GET", location.pathname, { target: "#token-list", select: "#token-list", swap: "outerHTML" });
});

// htmx requests carry the CSRF header too; failures become popups, an ended login the login page.
document.addEventListener("htmx:configRequest", (event) => { event.detail.headers["X-CSRF-Token"] = csrfToken(); });
document.addEventListener("htmx:responseError", (event) => {
  const xhr = event.detail.xhr;
  if (xhr.status === 401) return; // HX-Redirect already sends the page to the login
  let data = {};
  try { data = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
  toast(errorMessage(data, xhr.status), { level: "error" });
});

startNotifications();
