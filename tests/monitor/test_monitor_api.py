"""``GET /api/v1/monitor/status`` through the real app: this host's load and memory."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bhype_core.api.app import create_app
from bhype_monitor.hostinfo import parse_freebsd_sysctls, parse_proc_loadavg, parse_proc_meminfo

FIXTURES = Path(__file__).parent / "fixtures"


def status(runtime) -> dict:
    with TestClient(create_app(runtime=runtime)) as client:
        response = client.get("/api/v1/monitor/status")
    assert response.status_code == 200, response.text
    return response.json()


def test_only_the_monitor_router_is_mounted(monitor_runtime):
    runtime = monitor_runtime()
    assert runtime.registry.routers.names() == ["monitor"]
    assert "/api/v1/monitor/status" in create_app(runtime=runtime).openapi()["paths"]


def test_status_reads_this_linux_host(monitor_runtime):
    body = status(monitor_runtime(history_retention_days=90))
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
    assert (body["history_retention_days"], body["sample_interval_seconds"]) == (90, 60)


def test_unreadable_host_is_reported_not_raised(monitor_runtime):
    # A dry-run runner runs nothing and answers with empty output: the plugin must say so.
    body = status(monitor_runtime(runner={"dry_run": True}))
    assert body["host"] is None
    assert body["error"] == "unsupported host platform '' (bHype runs on FreeBSD and Linux)"
    assert body["history_retention_days"] == 30


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
