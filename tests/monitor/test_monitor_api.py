"""``GET /api/v1/monitor/status`` through the real app: this host's load and memory.

The API process runs no host commands: the worker's ``monitor.probe`` (periodic job and task
kind) reads the host with the real runner and stores the fact ``monitor.status``; the route
reads it.
"""

from __future__ import annotations

import re
from datetime import datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlmodel import Session, select

from bhype_core.api.app import create_app
from bhype_core.db.models import HostCommand
from bhype_core.tasks import TaskContext, store
from bhype_core.tasks.periodic import due_jobs, submit_run
from bhype_core.tasks.system import SYSTEM_OWNER
from bhype_core.testing import act_as
from bhype_core.testing.routes import get_route, host_command_count
from bhype_core.testing.tasks import run_queued
from bhype_monitor.hostinfo import parse_freebsd_sysctls, parse_proc_loadavg, parse_proc_meminfo
from bhype_monitor.status import FACT_KEY, PROBE_KIND, probe

FIXTURES = Path(__file__).parent / "fixtures"


def get_status(runtime) -> dict:
    return get_route(runtime, "/api/v1/monitor/status").json()  # any user may read the status


def status(runtime) -> dict:
    """Probe as the worker does (the real runner), then read the route; the route itself must
    not run a single host command."""
    stored = probe(TaskContext(runtime, "probe-task", PROBE_KIND))
    assert runtime.facts.get(FACT_KEY).value == stored
    ran = host_command_count(runtime)
    assert ran >= 1  # uname at least, through the runner and its audit trail
    body = get_status(runtime)
    assert host_command_count(runtime) == ran
    assert body["probed"] is True and body["message"] is None and body["age_seconds"] >= 0
    assert (body["host"], body["error"]) == (stored["host"], stored["error"])
    return body


def test_only_the_monitor_router_is_mounted(monitor_runtime):
    runtime = monitor_runtime()
    assert runtime.registry.routers.names() == ["monitor", "monitor_metrics"]
    paths = create_app(runtime=runtime).openapi()["paths"]
    assert "/api/v1/monitor/status" in paths and "/api/v1/monitor/status/refresh" in paths


def test_status_reads_this_linux_host(monitor_db_runtime):
    body = status(monitor_db_runtime(history_retention_days=90))
    assert body["error"] is None
    host = body["host"]
    assert host["platform"] == "linux"
    load = host["load_average"]
    assert all(load[key] >= 0 for key in ("one", "five", "fifteen"))
    # Total memory does not change while the test runs: compare with the kernel's own figure.
    mem_total_kib = re.search(r"^MemTotal:\s+(\d+) kB$", Path("/proc/meminfo").read_text(), re.M)[1]
    memory = host["memory"]
    assert memory["total_bytes"] == int(mem_total_kib) * 1024
    assert 0 < memory["available_bytes"] <= memory["total_bytes"]
    expected_used = 100 * (memory["total_bytes"] - memory["available_bytes"]) / memory["total_bytes"]
    assert memory["used_percent"] == pytest.approx(expected_used, abs=0.05)
    assert (body["history_retention_days"], body["sample_interval_seconds"]) == (90, 10)


def test_unreadable_host_is_reported_not_raised(monitor_db_runtime):
    # A dry-run runner runs nothing and answers with empty output: the plugin must say so.
    body = status(monitor_db_runtime(runner={"dry_run": True}))
    assert body["host"] is None
    assert body["error"] == "unsupported host platform '' (bHype runs on FreeBSD and Linux)"
    assert body["history_retention_days"] == 365


def test_freebsd_sysctl_sample():
    load, memory = parse_freebsd_sysctls((FIXTURES / "freebsd_sysctl.txt").read_text())
    assert (load.one, load.five, load.fifteen) == (0.52, 0.48, 0.45)
    assert memory.total_bytes == 17143058432
    assert memory.available_bytes == (2621440 + 524288) * 4096


def test_freebsd_sysctl_missing_value_is_refused():
    with pytest.raises(ValueError, match="expected 5 sysctl values, got 4"):
        parse_freebsd_sysctls("{ 0.52 0.48 0.45 }\n17143058432\n4096\n2621440\n")


def test_proc_parsers():
    assert parse_proc_loadavg("0.52 0.48 0.45 1/234 5678\n").fifteen == 0.45
    memory = parse_proc_meminfo("MemTotal:       16303108 kB\nMemFree:  1 kB\nMemAvailable:   8151554 kB\n")
    assert (memory.total_bytes, memory.available_bytes) == (16303108 * 1024, 8151554 * 1024)
    with pytest.raises(ValueError, match="MemAvailable"):
        parse_proc_meminfo("MemTotal:       16303108 kB\n")


def test_before_the_first_probe_the_route_says_so(monitor_db_runtime):
    runtime = monitor_db_runtime(sample_interval_seconds=120)
    body = get_status(runtime)
    assert body["probed"] is False and body["probed_at"] is None
    assert body["host"] is None and body["error"] is None
    assert "worker has not probed the host's load and memory yet" in body["message"]
    assert "POST /api/v1/monitor/status/refresh" in body["message"]
    assert body["sample_interval_seconds"] == 120  # settings need no probe
    assert host_command_count(runtime) == 0


def test_the_periodic_job_reads_this_host_in_the_worker(monitor_db_runtime):
    runtime = monitor_db_runtime()
    job = runtime.registry.periodic_jobs[PROBE_KIND]
    assert job.kind == PROBE_KIND and job.minute == "*/5"
    assert runtime.registry.tasks[PROBE_KIND].run is probe
    # What the worker's scheduler does at 12:05: find the due jobs and submit each as @system.
    (due,) = due_jobs(runtime, datetime(2025, 1, 6, 12, 5))
    assert due is job and due_jobs(runtime, datetime(2025, 1, 6, 12, 7)) == []
    task = submit_run(runtime, due, "the 12:05 run")
    try:
        assert run_queued(runtime) == [task.id]
    finally:
        runtime.queue.scheduler.lease.release()
    done = store.get_task(runtime.engine, task.id)
    assert (done.owner, done.state) == (SYSTEM_OWNER, "succeeded")
    with Session(runtime.engine) as session:
        argvs = [row.argv for row in session.exec(select(HostCommand).order_by(HostCommand.id))]
    assert argvs == [["uname", "-s"], ["cat", "/proc/loadavg"], ["cat", "/proc/meminfo"]]
    assert get_status(runtime)["host"]["platform"] == "linux"


def test_refresh_queues_a_probe_task_for_admins_only(monitor_db_runtime):
    runtime = monitor_db_runtime()
    app = create_app(runtime=runtime)
    with TestClient(app) as client:
        act_as(app, "alice", "operator")
        refused = client.post("/api/v1/monitor/status/refresh")
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
        assert store.list_tasks(runtime.engine) == []

        act_as(app, "root-admin", "admin")
        response = client.post("/api/v1/monitor/status/refresh")
    assert response.status_code == 202, response.text
    task = store.get_task(runtime.engine, response.json()["task_id"])
    assert (task.kind, task.owner, task.state) == (PROBE_KIND, "root-admin", "queued")
    assert host_command_count(runtime) == 0 and runtime.facts.get(FACT_KEY) is None
