// The monitor's charts: uPlot (vendored by the web UI) over /api/v1/monitor series, a range
// picker, and live updates from the newest sample every sampling interval. Each chart element
// says what it shows (data-monitor-metrics) and records how far it got (data-monitor-points,
// data-monitor-updates) so tests and people can see it drew and moved.
(function () {
  "use strict";
  const LIVE_RANGE = 86400; // up to a day the raw samples are charted, so live points append

  // 1234567 -> "1.2M": axis labels stay narrow whatever the unit.
  function compact(value) {
    if (value == null) return "";
    const units = [[1e12, "T"], [1e9, "G"], [1e6, "M"], [1e3, "k"]];
    for (const [size, suffix] of units) if (Math.abs(value) >= size) return (value / size).toFixed(1) + suffix;
    return String(Math.round(value * 10) / 10);
  }

  function fetchJson(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }).then((r) => {
      if (!r.ok) throw new Error(url + ": " + r.status);
      return r.json();
    });
  }

  function setupScope(scope) {
    const kind = scope.dataset.monitorScope;
    const vm = scope.dataset.monitorVm;
    // A group host's page (issue 22): its own series; the live snapshot is this API host's only.
    const host = scope.dataset.monitorHost;
    const interval = Math.max(2, Number(scope.dataset.monitorInterval) || 10) * 1000;
    const base = kind === "vm" ? "/api/v1/monitor/vms/" + encodeURIComponent(vm) : "/api/v1/monitor/host";
    const currentUrl = kind === "vm" ? base : "/api/v1/monitor/current";
    const charts = Array.from(scope.querySelectorAll("[data-monitor-chart]")).map((el) => ({
      el,
      metrics: el.dataset.monitorMetrics.split(","),
      plot: null,
      data: null,
    }));
    let range = Number((scope.querySelector("[data-monitor-range]") || {}).dataset?.monitorRange || 3600);
    let lastAt = 0;

    function draw(chart, times, columns) {
      chart.data = [times, ...columns];
      chart.el.dataset.monitorPoints = String(times.length);
      if (chart.plot) {
        chart.plot.setData(chart.data);
        return;
      }
      const width = Math.max(280, chart.el.clientWidth || 600);
      const opts = {
        title: chart.el.dataset.monitorTitle,
        width,
        height: 180,
        series: [{}, ...chart.metrics.map((m, i) => ({ label: m, stroke: ["#2563eb", "#dc2626", "#16a34a"][i % 3], spanGaps: false }))],
        axes: [{}, { size: 60, values: (u, values) => values.map(compact) }],
      };
      chart.plot = new window.uPlot(opts, chart.data, chart.el);
    }

    function load() {
      const now = Date.now() / 1000;
      const url = base + "/series?from=" + Math.floor(now - range) + "&to=" + Math.ceil(now) +
        "&metrics=" + encodeURIComponent(charts.flatMap((c) => c.metrics).join(",")) +
        (host ? "&host=" + encodeURIComponent(host) : "");
      return fetchJson(url).then((body) => {
        for (const chart of charts) {
          const columns = chart.metrics.map((m) => (body.metrics[m] ? body.metrics[m].avg : body.t.map(() => null)));
          draw(chart, body.t.slice(), columns);
        }
        scope.dataset.monitorLoaded = String(Number(scope.dataset.monitorLoaded || 0) + 1);
      });
    }

    function liveTick() {
      fetchJson(currentUrl).then((body) => {
        const at = body.at;
        const metrics = kind === "vm" ? body.metrics || {} : (body.host || {}).metrics || {};
        for (const span of scope.querySelectorAll("[data-monitor-live]")) {
          const value = metrics[span.dataset.monitorLive];
          if (value !== undefined) span.textContent = typeof value === "number" ? String(Math.round(value * 10) / 10) : value;
        }
        const status = scope.querySelector("[data-monitor-status]");
        if (status) status.textContent = at ? "sampled " + new Date(at * 1000).toLocaleTimeString() : "no sample yet";
        if (!at || at <= lastAt || range > LIVE_RANGE) return;
        lastAt = at;
        for (const chart of charts) {
          if (!chart.data) continue;
          const times = chart.data[0].concat([at]);
          const columns = chart.metrics.map((m, i) => chart.data[i + 1].concat([metrics[m] ?? null]));
          // Keep the window: drop points older than the range.
          let cut = 0;
          while (cut < times.length && times[cut] < at - range) cut++;
          draw(chart, times.slice(cut), columns.map((c) => c.slice(cut)));
          chart.el.dataset.monitorUpdates = String(Number(chart.el.dataset.monitorUpdates || 0) + 1);
        }
      }).catch((error) => {
        const status = scope.querySelector("[data-monitor-status]");
        if (status) status.textContent = String(error);
      });
    }

    for (const button of scope.querySelectorAll("[data-monitor-range]")) {
      button.addEventListener("click", () => {
        for (const other of scope.querySelectorAll("[data-monitor-range]")) {
          other.classList.toggle("primary", other === button);
          other.setAttribute("aria-pressed", other === button ? "true" : "false");
        }
        range = Number(button.dataset.monitorRange);
        load();
      });
    }
    if (host) {
      load();
      setInterval(load, interval); // the recorded series, reloaded: no live values of another host here
      return;
    }
    load().then(liveTick, liveTick);
    setInterval(liveTick, interval);
    setInterval(() => { if (range > LIVE_RANGE) load(); }, 60000);
  }

  function start() {
    if (!window.uPlot) return setTimeout(start, 50); // the deferred uPlot script runs first
    document.querySelectorAll("[data-monitor-scope]").forEach(setupScope);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
