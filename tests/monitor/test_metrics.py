"""``GET /metrics``: closed by default; with the configured token (its SHA-256 in the settings)
or from an allowed address it serves the live snapshot, which prometheus-client's own parser
reads back with per-VM labels."""

from __future__ import annotations

import hashlib
import time

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families
from standins import add_vm_row, start_standin, stop_all
from starlette.requests import Request

from bhype_core.api.app import create_app
from bhype_core.errors import ConfigError
from bhype_core.testing.api_auth import act_as
from bhype_monitor.metrics import allowed
from bhype_monitor.sampler import Monitor

TOKEN = "scrape-me-7f3a"


def scrape(runtime, headers=None):
    app = create_app(runtime=runtime)
    with TestClient(app) as client:
        return client.get("/metrics", headers=headers or {})


def request_from(address: str, headers: dict[str, str] | None = None) -> Request:
    raw = [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    return Request({"type": "http", "method": "GET", "path": "/metrics", "headers": raw, "client": (address, 40000)})


def test_closed_by_default_and_with_a_wrong_token(vm_monitor_runtime) -> None:
    closed = scrape(vm_monitor_runtime())
    assert closed.status_code == 403 and "metrics_token_sha256" in closed.text
    runtime = vm_monitor_runtime(monitor={"metrics_token_sha256": hashlib.sha256(TOKEN.encode()).hexdigest()})
    assert scrape(runtime, {"Authorization": "Bearer wrong"}).status_code == 403
    assert scrape(runtime).status_code == 403


def test_allowed_addresses(vm_monitor_runtime) -> None:
    settings = vm_monitor_runtime(monitor={"metrics_allow": ["10.9.0.0/16", "192.0.2.7"]}).settings.section("monitor")
    assert allowed(request_from("10.9.4.1"), settings) and allowed(request_from("192.0.2.7"), settings)
    assert not allowed(request_from("10.8.0.1"), settings) and not allowed(request_from("192.0.2.8"), settings)
    with pytest.raises(ConfigError, match="metrics_allow"):
        vm_monitor_runtime(monitor={"metrics_allow": ["not-a-network"]})


def test_scraped_text_parses_with_per_vm_labels(vm_monitor_runtime) -> None:
    runtime = vm_monitor_runtime(monitor={"metrics_token_sha256": hashlib.sha256(TOKEN.encode()).hexdigest()})
    standins = [start_standin(runtime, "web1", "alice"), start_standin(runtime, "db1", "bob")]
    try:
        monitor = Monitor(runtime)
        monitor.tick()
        time.sleep(1.0)  # a second sample: rates (CPU %) need two
        monitor.tick()
        response = scrape(runtime, {"Authorization": f"Bearer {TOKEN}"})
    finally:
        stop_all(standins)
    assert response.status_code == 200 and response.headers["content-type"].startswith("text/plain")
    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    assert families["bhype_host_mem_total"].samples[0].value > 0
    running = {s.labels["vm"]: (s.labels["owner"], s.value) for s in families["bhype_vm_running"].samples}
    assert running == {"web1": ("alice", 1.0), "db1": ("bob", 1.0)}
    rss = {s.labels["vm"]: s.value for s in families["bhype_vm_mem_rss"].samples}
    assert set(rss) == {"web1", "db1"} and all(v > 0 for v in rss.values())
    assert {s.labels["vm"] for s in families["bhype_vm_cpu_percent"].samples} == {"web1", "db1"}


def test_the_grafana_dashboard_asks_only_for_metrics_we_serve() -> None:
    """docs/grafana-bhype.json: every metric a panel queries is one /metrics can serve."""
    import json
    import re
    from pathlib import Path

    from bhype_monitor.metrics import HOST_GAUGES, NIC_GAUGES, VM_GAUGES

    served = ({f"bhype_host_{k}" for k in HOST_GAUGES} | {f"bhype_vm_{k}" for k in VM_GAUGES}
              | {f"bhype_vm_nic_{k}" for k in NIC_GAUGES}
              | {"bhype_host_core_cpu_percent", "bhype_pool_capacity_percent", "bhype_pool_online", "bhype_vm_running"})
    dashboard = json.loads((Path(__file__).resolve().parents[2] / "docs" / "grafana-bhype.json").read_text())
    queried = {name for panel in dashboard["panels"] for target in panel["targets"]
               for name in re.findall(r"\bbhype_[a-z0-9_]+", target["expr"])}
    queried |= {name for var in dashboard["templating"]["list"]
                for name in re.findall(r"\bbhype_[a-z0-9_]+", var.get("query", ""))}
    assert queried and queried <= served, queried - served


def test_stopped_vms_are_not_sampled_but_shown_from_their_records(vm_monitor_runtime) -> None:
    """Issue 15: the snapshot carries only the VMs the sampler reads (a host with 10,000
    stopped records publishes none of them); ``/metrics`` and ``/current`` still list a stopped
    VM, from its record (not running, its recorded state, no values)."""
    runtime = vm_monitor_runtime(monitor={"metrics_token_sha256": hashlib.sha256(TOKEN.encode()).hexdigest()})
    standins = [start_standin(runtime, "web1", "alice")]
    add_vm_row(runtime, "cold1", "alice", state="stopped")
    add_vm_row(runtime, "cold2", "bob", state="crashed")
    try:
        snapshot = Monitor(runtime).tick()
        assert set(snapshot["vms"]) == {standins[0].uuid}
        response = scrape(runtime, {"Authorization": f"Bearer {TOKEN}"})
        app = create_app(runtime=runtime)
        act_as(app, "alice", "operator")
        with TestClient(app) as client:
            mine = client.get("/api/v1/monitor/current").json()["vms"]
    finally:
        stop_all(standins)
    families = {family.name: family for family in text_string_to_metric_families(response.text)}
    running = {s.labels["vm"]: (s.labels["owner"], s.value) for s in families["bhype_vm_running"].samples}
    assert running == {"web1": ("alice", 1.0), "cold1": ("alice", 0.0), "cold2": ("bob", 0.0)}
    assert {s.labels["vm"] for s in families["bhype_vm_mem_rss"].samples} == {"web1"}
    assert set(mine) == {"web1", "cold1"}  # bob's stopped VM stays his
    assert (mine["cold1"]["state"], mine["cold1"]["metrics"]) == ("stopped", {})
    assert mine["web1"]["state"] == "running" and mine["web1"]["metrics"]["mem_rss"] > 0
