// Host → Updates: when a hostops finding arrives on the web UI's live notification stream (the
// toast shows it), fetch the open findings again and redraw the table, without a page reload.

function cell(row, text) {
  const td = document.createElement("td");
  td.textContent = text;
  row.append(td);
  return td;
}

function draw(findings) {
  const body = document.querySelector("#findings tbody");
  if (!body) return;
  body.replaceChildren();
  if (!findings.length) {
    const row = document.createElement("tr");
    row.className = "empty";
    cell(row, "Nothing open.").colSpan = 6;
    body.append(row);
    return;
  }
  for (const f of findings) {
    const row = document.createElement("tr");
    row.dataset.finding = f.key;
    row.className = f.kind === "vulnerability" ? "sev-error" : "sev-warning";
    cell(row, f.kind);
    cell(row, f.package);
    cell(row, f.version);
    const what = cell(row, f.title + " ");
    for (const url of (f.data && f.data.urls) || []) {
      const link = document.createElement("a");
      link.href = url;
      link.rel = "noreferrer noopener";
      link.target = "_blank";
      link.textContent = "VuXML";
      what.append(link, " ");
    }
    const details = document.createElement("details");
    const summary = document.createElement("summary");
    summary.textContent = "Raw output";
    const pre = document.createElement("pre");
    pre.textContent = f.raw_output;
    details.append(summary, pre);
    what.append(details);
    cell(row, ((f.data && f.data.cves) || []).join(", "));
    const actions = cell(row, "");
    const button = document.createElement("button");
    button.type = "button";
    button.className = "secondary";
    button.dataset.api = `POST /api/v1/hostops/findings/${f.id}/dismiss`;
    button.dataset.done = "Dismissed for a while";
    button.dataset.reload = "";
    button.textContent = "Dismiss";
    actions.append(button);
    body.append(row);
  }
}

async function refresh() {
  const response = await fetch("/api/v1/hostops/findings", { credentials: "same-origin" });
  if (response.ok) draw((await response.json()).findings);
}

document.addEventListener("bhype:notification", (event) => {
  const kind = event.detail && event.detail.kind;
  if (kind === "hostops.vulnerability" || kind === "hostops.patches") refresh();
});
