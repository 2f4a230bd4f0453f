"""The agent serves monitoring's live values (no guest needed): a VM record, a live metrics
snapshot published through the core seam as the monitor sampler does, and ``snmptable``/
``snmpget`` from the real agent show the VM's CPU %, memory used and uptime and the pools'
space; a stale snapshot is not served as current."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import pytest

import bhype_snmp.plugin
from bhype_core.builtins import drivers, models, storage, tasks, vm_tasks
from bhype_core.db.migrate import upgrade
from bhype_core.plugin_api import publish_live_metrics
from bhype_core.plugins import make_plugin_manager
from bhype_core.runtime import build_runtime
from bhype_core.tasks import MemoryReporter, TaskContext
from bhype_core.testing import make_settings
from bhype_core.testing.waiting import wait_for
from bhype_core.vm.create import create_vm
from bhype_snmp.agent_service import EXTRAS_KEY, start_agent

from .kit import free_udp_port, snmp_v2c, vm_table

COMMUNITY = "agent-L1ve"
BUILTINS = [("core_models", models), ("core_storage", storage), ("core_drivers", drivers), ("core_tasks", tasks),
            ("core_vms", vm_tasks), ("snmp", bhype_snmp.plugin)]
MIB = 1024 * 1024


@pytest.fixture
def host():
    """A runtime with the VM built-ins and the snmp agent on a free loopback port (refresh 1 s)."""
    short = Path(tempfile.mkdtemp(prefix="bh-", dir="/tmp"))
    port = free_udp_port()
    settings = make_settings(short / "data", core={"data_dir": str(short / "data")},
                             vm={"datastores": {"default": {"path": str(short / "ds")}}},
                             snmp={"agent_enabled": True, "agent_community": COMMUNITY,
                                   "agent_address": f"127.0.0.1:{port}", "agent_refresh": 1, "host_name": "hv1"})
    runtime = build_runtime(settings, make_plugin_manager(load_entrypoints=False, plugins=BUILTINS))
    upgrade(runtime)
    runtime.port = port
    yield runtime
    agent = runtime.extras.get(EXTRAS_KEY)
    if agent is not None:
        agent.stop()
    runtime.engine.dispose()
    shutil.rmtree(short, ignore_errors=True)


def snmp(tool: str, port: int, *args: str) -> str:
    return snmp_v2c(tool, port, COMMUNITY, *args)


def table(port: int) -> dict[str, dict[str, str]]:
    return vm_table(port, COMMUNITY)


def live(uuid: str, at: float) -> dict:
    """A snapshot in the shape the monitor sampler publishes (bhype_core.live_metrics)."""
    return {"at": at, "interval": 10, "host": {"metrics": {"cpu_percent": 20.0}},
            "pools": [{"name": "tank", "size": 4096 * MIB, "alloc": 3072 * MIB, "free": 1024 * MIB, "cap": 75,
                       "health": "ONLINE"},
                      {"name": "zroot", "size": 1024 * MIB, "alloc": 900 * MIB, "free": 124 * MIB, "cap": 88,
                       "health": "ONLINE"}],
            "vms": {uuid: {"name": "web1", "owner": "alice", "state": "running",
                           "metrics": {"cpu_percent": 37.4, "mem_rss": 200 * MIB, "uptime": 3723}}}}


def test_the_table_shows_a_vms_live_cpu_memory_and_pool_space(host):
    vm = create_vm(TaskContext(host, "t-create", "vm.create", None, MemoryReporter()), "web1",
                   overrides={"boot": "grub", "memory": "64M", "cpus": 1}, owner="alice")
    uuid = vm["uuid"]
    tick = start_agent(host)
    port = host.port
    rows = table(port)  # before monitoring published anything: no live columns, nothing invented
    assert rows["web1"]["bhypeVmMemory"] == "64 MiB"
    assert rows["web1"].get("bhypeVmCpuPercent", "?") in ("?", "")
    assert "No Such" in snmp("snmpget", port, "BHYPE-MIB::bhypeHostPoolCapacity.0")

    publish_live_metrics(host, live(uuid, time.time()), ttl=30)
    rows = wait_for(lambda: (tick(), t := table(port))[1] and "37" in t["web1"].get("bhypeVmCpuPercent", "") and t,
                    "the agent to serve the live snapshot")
    assert rows["web1"]["bhypeVmCpuPercent"] == "37 percent of one CPU"
    assert rows["web1"]["bhypeVmMemoryUsed"] == "200 MiB"
    got = snmp("snmpget", port, "BHYPE-MIB::bhypeHostPoolCapacity.0", "BHYPE-MIB::bhypeHostPoolSize.0",
               "BHYPE-MIB::bhypeHostPoolFree.0")
    assert "bhypeHostPoolCapacity.0 = Gauge32: 88 percent" in got  # the fullest pool
    assert "bhypeHostPoolSize.0 = Gauge32: 5120 MiB" in got and "bhypeHostPoolFree.0 = Gauge32: 1148 MiB" in got

    publish_live_metrics(host, live(uuid, time.time() - 3600), ttl=30)  # the sampler stopped an hour ago
    rows = wait_for(lambda: (tick(), t := table(port))[1] and "37" not in t["web1"].get("bhypeVmCpuPercent", "")
                    and t, "the stale snapshot to be dropped")
    assert rows["web1"]["bhypeVmMemory"] == "64 MiB" and rows["web1"]["bhypeVmState"] == "stopped"


def test_uptime_is_the_measured_one_while_running_and_zero_when_stopped():
    from datetime import UTC, datetime, timedelta

    from bhype_snmp.agent_values import VmRow, uptime_ticks

    now = datetime.now(UTC)
    running = VmRow(1, "web1", "u", "running", "alice", 1, MIB, now - timedelta(seconds=5))
    assert uptime_ticks(running, now, 3723) == 372300  # the hypervisor's own uptime, in ticks
    assert uptime_ticks(running, now) == 500  # no measurement: since the state changed
    assert uptime_ticks(VmRow(2, "db1", "v", "stopped", "bob", 1, MIB, None), now, 3723) == 0
