"""bhypeVmLastBackup over real SNMP: the real backup plugin's point table answers the core's
last-backup question, the agent reads it once per refresh, and ``snmptable``/``snmpget`` show
the backed-up VM's time and "never" ('0000000000000000'H) for the other; a backup plugin that
fails makes the column absent, never "never"."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

import bhype_snmp.plugin
from bhype_core.builtins import drivers, models, storage, tasks, vm_tasks
from bhype_core.db.migrate import upgrade
from bhype_core.db.session import session
from bhype_core.plugin_api import find_vm, hookimpl
from bhype_core.plugins import make_plugin_manager
from bhype_core.runtime import build_runtime
from bhype_core.tasks import MemoryReporter, TaskContext
from bhype_core.testing import make_settings
from bhype_core.testing.parts import missing, require_program
from bhype_core.testing.waiting import wait_for
from bhype_core.vm.create import create_vm
from bhype_snmp import oids
from bhype_snmp.agent_service import EXTRAS_KEY, start_agent

from .kit import free_udp_port, snmp_v2c, vm_table

COMMUNITY = "agent-B4ckup"
BUILTINS = [("core_models", models), ("core_storage", storage), ("core_drivers", drivers), ("core_tasks", tasks),
            ("core_vms", vm_tasks), ("snmp", bhype_snmp.plugin)]
TAKEN = datetime(2026, 12, 7, 3, 4, 5, 600000, tzinfo=UTC)


def backup_plugin():
    """The real bhype_backup hook module (``nox`` may test bhype_snmp alone: ``--without backup``)."""
    try:
        import bhype_backup.plugin
    except ImportError:
        missing("backup", "the bhype-backup plugin is not installed (its point table answers the column)")
    return bhype_backup.plugin


class BrokenBackups:
    """A backup plugin whose table cannot be read."""

    @hookimpl
    def bhype_vm_last_backups(self, runtime, uuids):
        raise RuntimeError("backup_point is locked")


def make_host(extra: list[tuple[str, object]]):
    short = Path(tempfile.mkdtemp(prefix="bh-", dir="/tmp"))
    port = free_udp_port()
    settings = make_settings(short / "data", core={"data_dir": str(short / "data")},
                             vm={"datastores": {"default": {"path": str(short / "ds")}}},
                             snmp={"agent_enabled": True, "agent_community": COMMUNITY,
                                   "agent_address": f"127.0.0.1:{port}", "agent_refresh": 1})
    runtime = build_runtime(settings, make_plugin_manager(load_entrypoints=False, plugins=[*BUILTINS, *extra]))
    upgrade(runtime)
    runtime.port, runtime.short = port, short
    for name in ("web1", "db1"):
        create_vm(TaskContext(runtime, "t-create", "vm.create", None, MemoryReporter()), name,
                  overrides={"boot": "grub", "memory": "64M", "cpus": 1}, owner="alice")
    return runtime


@pytest.fixture
def hosts():
    built = []
    yield lambda extra: built.append(make_host(extra)) or built[-1]
    for runtime in built:
        agent = runtime.extras.get(EXTRAS_KEY)
        if agent is not None:
            agent.stop()
        runtime.engine.dispose()
        shutil.rmtree(runtime.short, ignore_errors=True)


def snmp(tool: str, port: int, *args: str) -> str:
    return snmp_v2c(tool, port, COMMUNITY, *args)


def table(port: int) -> dict[str, dict[str, str]]:
    return vm_table(port, COMMUNITY)


def vm_index(runtime, name: str) -> int:
    return find_vm(runtime, name).id


def test_a_backed_up_vm_shows_its_time_and_another_never(hosts):
    backup = backup_plugin()
    from bhype_backup.models import BackupPoint

    runtime = hosts([("backup", backup)])
    web = find_vm(runtime, "web1")
    tick = start_agent(runtime)
    rows = table(runtime.port)
    assert rows["web1"]["bhypeVmLastBackup"] == rows["db1"]["bhypeVmLastBackup"] == "0-0-0,0:0:0.0"  # never

    with session(runtime, write=True) as db:
        db.add(BackupPoint(vm_uuid=web.uuid, vm_name="web1", target="nas", path="web1/1", mode="snapshot",
                           created=TAKEN, finished=TAKEN, complete=True))
        db.add(BackupPoint(vm_uuid=web.uuid, vm_name="web1", target="nas", path="web1/2", mode="snapshot",
                           created=datetime(2026, 12, 7, 5, 0, tzinfo=UTC), complete=False))  # still running
    rows = wait_for(lambda: (tick(), t := table(runtime.port))[1] and t["web1"]["bhypeVmLastBackup"] != "0-0-0,0:0:0.0"
                    and t, "the agent to serve web1's backup")
    assert rows["web1"]["bhypeVmLastBackup"] == "2026-12-7,3:4:5.6,+0:0"  # DateAndTime, UTC
    assert rows["db1"]["bhypeVmLastBackup"] == "0-0-0,0:0:0.0"
    column = "." + ".".join(map(str, (*oids.VM_ENTRY, oids.VM_COLUMNS["bhypeVmLastBackup"])))
    db_index = vm_index(runtime, "db1")
    raw = subprocess.run([require_program("snmpget", "snmp"), "-v2c", "-c", COMMUNITY, "-m", "", "-On", "-Ox",
                          f"udp:127.0.0.1:{runtime.port}", f"{column}.{web.id}", f"{column}.{db_index}"],
                         capture_output=True, text=True, timeout=60)  # no MIB: the octets as sent
    assert f"{column}.{web.id} = Hex-STRING: 07 EA 0C 07 03 04 05 06 2B 00 00" in raw.stdout, raw.stderr
    assert f"{column}.{db_index} = Hex-STRING: 00 00 00 00 00 00 00 00" in raw.stdout


def test_a_failing_backup_plugin_leaves_the_column_absent(hosts):
    runtime = hosts([("broken_backups", BrokenBackups())])
    start_agent(runtime)
    got = snmp("snmpget", runtime.port, f"BHYPE-MIB::bhypeVmLastBackup.{vm_index(runtime, 'web1')}",
               f"BHYPE-MIB::bhypeVmName.{vm_index(runtime, 'web1')}")
    assert "bhypeVmLastBackup" in got and "No Such Instance" in got
    assert 'STRING: "web1"' in got or "STRING: web1" in got


class CountingBackups:
    """A backup plugin that counts how often it is asked."""

    def __init__(self) -> None:
        self.calls = 0

    @hookimpl
    def bhype_vm_last_backups(self, runtime, uuids):
        self.calls += 1
        return {}


def test_the_backup_plugins_are_asked_once_per_refresh_never_per_request(hosts):
    counting = CountingBackups()
    runtime = hosts([("counting_backups", counting)])
    tick = start_agent(runtime)  # the first refresh
    assert counting.calls == 1
    for _ in range(3):
        assert table(runtime.port)["web1"]["bhypeVmLastBackup"] == "0-0-0,0:0:0.0"
        snmp("snmpget", runtime.port, f"BHYPE-MIB::bhypeVmLastBackup.{vm_index(runtime, 'db1')}")
    assert counting.calls == 1  # six walks and gets later: still the one refresh
    wait_for(lambda: tick() is not None, "the next refresh (agent_refresh = 1 s)")
    assert counting.calls == 2
