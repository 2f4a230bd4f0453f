// Uploading an ISO with a progress bar: the file is the raw body of PUT /api/v1/isos/{name}.
import { clearErrors, csrfToken, showErrors, toast, toLogin } from "./app.js";

const form = document.getElementById("iso-upload");

function upload() {
  clearErrors(form);
  const file = form.querySelector("#u-file").files[0];
  if (!file) {
    showErrors(form, { error: { message: "choose a file", fields: [{ path: "body", message: "choose a file" }] } }, 422);
    return;
  }
  const name = form.querySelector("#u-name").value.trim() || file.name;
  const params = new URLSearchParams({ datastore: form.dataset.datastore });
  const sha = form.querySelector("#u-sha").value.trim();
  if (sha) params.set("sha256", sha);
  const bar = document.getElementById("u-progress");
  const status = document.getElementById("u-status");
  const cancel = document.getElementById("u-cancel");
  const submit = form.querySelector('[type="submit"]');
  const xhr = new XMLHttpRequest();
  xhr.open("PUT", `/api/v1/isos/${encodeURIComponent(name)}?${params}`);
  xhr.setRequestHeader("X-CSRF-Token", csrfToken());
  xhr.setRequestHeader("Content-Type", "application/octet-stream");
  xhr.setRequestHeader("Accept", "application/json");
  xhr.upload.addEventListener("progress", (event) => {
    if (!event.lengthComputable) return;
    bar.value = Math.round((100 * event.loaded) / event.total);
    status.textContent = `${bar.value} % of ${(event.total / 1048576).toFixed(1)} MiB sent`;
  });
  const done = () => { submit.disabled = false; cancel.hidden = true; };
  xhr.addEventListener("load", () => {
    done();
    let data = {};
    try { data = JSON.parse(xhr.responseText); } catch { /* not JSON */ }
    if (xhr.status === 401) { toLogin(true); return; }
    if (xhr.status !== 202) { bar.hidden = true; status.textContent = ""; showErrors(form, data, xhr.status); return; }
    status.textContent = "Uploaded; the library is adding it.";
    location.href = `/ui/tasks/${encodeURIComponent(data.task_id)}`;
  });
  xhr.addEventListener("error", () => { done(); toast("The upload failed (connection lost)", { level: "error" }); });
  xhr.addEventListener("abort", () => { done(); bar.hidden = true; status.textContent = "Upload cancelled."; });
  cancel.onclick = () => xhr.abort();
  bar.value = 0;
  bar.hidden = false;
  cancel.hidden = false;
  submit.disabled = true;
  xhr.send(file);
}

form?.addEventListener("submit", (event) => { event.preventDefault(); upload(); });
form?.querySelector("#u-file").addEventListener("change", (event) => {
  const name = form.querySelector("#u-name");
  if (!name.value && event.target.files[0]) name.value = event.target.files[0].name;
});
