"""The read-only agent over real VMs: bHype VMs run by the real QEMU driver, the ``snmp.agent``
sampler serving them, ``snmpwalk``/``snmptable`` of bhypeVmTable straight from the agent and
through a real net-snmp ``snmpd`` that proxies BHYPE-MIB's subtree to it (the way a host's
port 161 serves it); the state column changes when a VM stops. Off by default."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

import bhype_snmp.plugin
from bhype_core.builtins import drivers, models, storage, tasks, vm_tasks
from bhype_core.db.migrate import upgrade
from bhype_core.plugins import make_plugin_manager
from bhype_core.runtime import build_runtime
from bhype_core.tasks import MemoryReporter, TaskContext
from bhype_core.testing import make_settings
from bhype_core.testing.parts import require_program
from bhype_core.testing.waiting import wait_for
from bhype_core.vm.create import create_vm
from bhype_core.vm.power import force_stop_vm, start_vm, stop_vm
from bhype_snmp import oids
from bhype_snmp.agent_service import EXTRAS_KEY, start_agent

from .kit import free_udp_port, mib_path

pytestmark = pytest.mark.guest
COMMUNITY = "agent-S3cret"
BUILTINS = [("core_models", models), ("core_storage", storage), ("core_drivers", drivers), ("core_tasks", tasks),
            ("core_vms", vm_tasks), ("snmp", bhype_snmp.plugin)]


@pytest.fixture
def vm_host():
    """A runtime with the core's VM built-ins (real QEMU driver) and the snmp plugin, its
    agent on a free loopback port; VMs are force-stopped and the agent stopped afterwards."""
    short = Path(tempfile.mkdtemp(prefix="bh-", dir="/tmp"))  # unix sockets: short paths (unix(7))
    port = free_udp_port()
    settings = make_settings(short / "data", core={"data_dir": str(short / "data")},
                             vm={"datastores": {"default": {"path": str(short / "ds")}}},
                             snmp={"agent_enabled": True, "agent_community": COMMUNITY,
                                   "agent_address": f"127.0.0.1:{port}", "agent_refresh": 1, "host_name": "hv1"})
    runtime = build_runtime(settings, make_plugin_manager(load_entrypoints=False, plugins=BUILTINS))
    upgrade(runtime)
    runtime.port = port
    started = []
    yield runtime, started
    for name in started:
        try:
            force_stop_vm(context(runtime, "vm.force_stop"), name)
        except Exception:
            pass
    agent = runtime.extras.get(EXTRAS_KEY)
    if agent is not None:
        agent.stop()
    runtime.engine.dispose()
    shutil.rmtree(short, ignore_errors=True)


def context(runtime, kind):
    return TaskContext(runtime, f"t-{kind}", kind, None, MemoryReporter())


def snmp(tool: str, port: int, *args: str) -> str:
    """``snmpwalk``/``snmptable``/``snmpget`` (snmpcmd(1)) with BHYPE-MIB loaded, v2c."""
    program = require_program(tool, "snmp")
    argv = [program, "-v2c", "-c", COMMUNITY, "-t", "2", "-r", "2", "-M", mib_path(), "-m", "BHYPE-MIB",
            f"udp:127.0.0.1:{port}", *args]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return result.stdout


def table(port: int) -> dict[str, dict[str, str]]:
    """``snmptable -Cf | -CH`` of bhypeVmTable by VM name (snmptable(1): -Cf separator, -CH no header)."""
    out = snmp("snmptable", port, "-Cf", "|", "-Cl", "BHYPE-MIB::bhypeVmTable")
    lines = [line for line in out.splitlines() if "|" in line]
    header, rows = lines[0].split("|"), [line.split("|") for line in lines[1:]]
    return {row[0]: dict(zip(header, row, strict=True)) for row in rows}


@pytest.fixture
def snmpd(tmp_path):
    """A real net-snmp snmpd on a loopback port proxying BHYPE-MIB's subtree to ``agent_port``
    (snmpd.conf(5): agentAddress, rocommunity, proxy); yields a starter returning its port."""
    program = require_program("snmpd", "snmpd")
    processes = []

    def start(agent_port: int) -> int:
        port = free_udp_port()
        arc = "." + ".".join(map(str, oids.ARC))
        conf = tmp_path / "snmpd.conf"
        conf.write_text(f"agentAddress udp:127.0.0.1:{port}\nrocommunity {COMMUNITY} 127.0.0.1\n"
                        f"proxy -v 2c -c {COMMUNITY} udp:127.0.0.1:{agent_port} {arc}\n")
        process = subprocess.Popen([program, "-f", "-Lo", "-C", "-c", str(conf), f"--persistentDir={tmp_path / 'sd'}",
                                    "-M", mib_path(), "-m", "BHYPE-MIB"],
                                   stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        processes.append(process)
        wait_for(lambda: process.poll() is not None or _answers(port), "snmpd to answer", timeout=60)
        assert process.poll() is None, process.stdout.read()
        return port

    yield start
    for process in processes:
        process.terminate()
        process.wait(timeout=10)


def _answers(port: int) -> bool:
    result = subprocess.run(["snmpget", "-v2c", "-c", COMMUNITY, "-t", "1", "-r", "0", f"udp:127.0.0.1:{port}",
                             ".1.3.6.1.2.1.1.3.0"], capture_output=True, text=True, timeout=30)
    return result.returncode == 0


def test_the_agent_is_off_by_default(snmp_runtime):
    runtime = snmp_runtime()
    assert start_agent(runtime)() is None and EXTRAS_KEY not in runtime.extras


def test_walk_and_table_show_real_vms_and_a_stop(vm_host, snmpd):
    runtime, started = vm_host
    for name, memory in (("web1", "64M"), ("db1", "96M")):
        create_vm(context(runtime, "vm.create"), name, overrides={"boot": "grub", "memory": memory, "cpus": 1},
                  owner="alice")
        start_vm(context(runtime, "vm.start"), name)
        started.append(name)
    tick = start_agent(runtime)
    port = runtime.port

    rows = wait_for(lambda: (tick(), table(port))[1], "the agent's table")
    assert sorted(rows) == ["db1", "web1"]
    assert rows["web1"]["bhypeVmState"] == "running" and rows["db1"]["bhypeVmState"] == "running"
    assert rows["web1"]["bhypeVmOwner"] == "alice" and rows["web1"]["bhypeVmMemory"] == "64 MiB"
    assert rows["db1"]["bhypeVmMemory"] == "96 MiB" and rows["db1"]["bhypeVmVcpus"] == "1"
    walked = snmp("snmpwalk", port, "BHYPE-MIB::bhypeMIB")
    assert 'BHYPE-MIB::bhypeHostName.0 = STRING: hv1' in walked
    assert "BHYPE-MIB::bhypeHostVmsRunning.0 = Gauge32: 2" in walked
    assert "BHYPE-MIB::bhypeHostVmsStopped.0 = Gauge32: 0" in walked

    # The host's snmpd serves the same table on its own port by proxying the subtree.
    proxied = snmpd(port)
    assert table(proxied) == rows

    stop_vm(context(runtime, "vm.stop"), "db1", timeout=2)  # no OS to answer ACPI: forced off after 2 s
    after = wait_for(lambda: (tick(), (t := table(proxied)))[1] and t["db1"]["bhypeVmState"] == "stopped" and t,
                     "db1 to show stopped")
    assert after["web1"]["bhypeVmState"] == "running"
    assert after["db1"]["bhypeVmUptime"].endswith("0:00:00.00")
    walked = snmp("snmpwalk", proxied, "BHYPE-MIB::bhypeHost")
    assert "BHYPE-MIB::bhypeHostVmsRunning.0 = Gauge32: 1" in walked
    assert "BHYPE-MIB::bhypeHostVmsStopped.0 = Gauge32: 1" in walked


def test_a_wrong_community_gets_no_answer(vm_host):
    runtime, _ = vm_host
    start_agent(runtime)
    result = subprocess.run(["snmpget", "-v2c", "-c", "guess", "-t", "1", "-r", "0", f"udp:127.0.0.1:{runtime.port}",
                             "." + ".".join(map(str, oids.HOST_OBJECTS["bhypeHostName"])) + ".0"],
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0 and "Timeout" in result.stderr
