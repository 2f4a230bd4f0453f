"""Real QEMU guests (the tiny guest under TCG) started by the real VM tasks on a switch inside a
network namespace, made busy through their serial consoles: one burns CPU, one writes its disk,
one sends traffic to a host on the switch's uplink. The monitor's samples and recorded series
show each load on the right VM, and the traffic on the right VM's NIC, read through the QEMU
process's own network namespace."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path
from typing import Any

import pytest

from bhype_core.network.service import create_switch
from bhype_core.plugin_api import find_vm, list_vms
from bhype_core.tasks import MemoryReporter, TaskContext
from bhype_core.testing.guest_image import READY_MARKER, GuestImage
from bhype_core.testing.netns import (
    NetnsRunner,
    netns,  # noqa: F401  (the fixture)
    veth_into,
)
from bhype_core.vm.create import create_vm
from bhype_core.vm.power import start_vm
from bhype_core.vm.services import active_driver, open_datastore
from bhype_monitor.sampler import Monitor, vm_series

pytestmark = [pytest.mark.guest, pytest.mark.slow]

BOOT_WAIT = 300.0  # s: three TCG guests on a loaded 2-core machine (a bound, not an assertion)


def context(runtime: Any, kind: str, user: str | None = "alice") -> TaskContext:
    return TaskContext(runtime, f"t-{kind}-{time.monotonic_ns()}", kind, user, MemoryReporter())


class Console:
    """The serial console of a VM the QEMU driver started (its unix socket and its log)."""

    def __init__(self, status: dict[str, Any]) -> None:
        serial = status["consoles"]["serial"]
        self.socket, self.log = serial["unix"], Path(serial["log"])

    def text(self) -> str:
        return self.log.read_bytes().decode(errors="replace") if self.log.exists() else ""

    def wait(self, pattern: str, start: int = 0, timeout: float = BOOT_WAIT) -> re.Match[str]:
        deadline = time.monotonic() + timeout
        while not (found := re.compile(pattern).search(self.text(), start)):
            assert time.monotonic() < deadline, f"no {pattern!r} on the console:\n{self.text()[-2000:]}"
            time.sleep(0.3)
        return found

    def run(self, command: str, marker: str, timeout: float = 120.0) -> None:
        """Type ``command; echo MARKER-$((6*7))`` until the marker's answer appears (a slow shell
        may swallow a first attempt; the command must be safe to run twice)."""
        deadline = time.monotonic() + timeout
        while True:
            start = len(self.text())
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.connect(self.socket)
                sock.sendall(f"{command}; echo {marker}-$((6*7))\n".encode())
                try:
                    self.wait(rf"{marker}-42\r?\n", start, timeout=20)
                    return
                except AssertionError:
                    assert time.monotonic() < deadline, f"{command!r} did not run:\n{self.text()[-2000:]}"


def series_max(monitor: Monitor, uuid: str, metric: str, since: float) -> float:
    assert monitor.history is not None
    found = monitor.history.series(vm_series(uuid), since, time.time() + 1, metrics=[metric])
    values = [v for v in found["metrics"].get(metric, {}).get("max", []) if v is not None]
    return max(values, default=0.0)


def sample_for(monitor: Monitor, seconds: float) -> float:
    """Sample every 2 s for ``seconds``; returns when the phase started (for its series)."""
    start = time.time()
    while time.time() - start < seconds:
        monitor.tick()
        time.sleep(2.0)
    return start


def test_cpu_disk_and_network_show_on_the_right_vm_and_nic(
    tiny_guest: GuestImage, netns, vm_monitor_runtime  # noqa: F811  (netns: the fixture)
):
    host_ns, outside = netns("host"), netns("out")
    runtime = vm_monitor_runtime(qemu={"accel": "tcg"}, monitor={"sample_interval_seconds": 2})
    runtime.__dict__["runner"] = NetnsRunner(host_ns)  # bridge, taps and QEMU live in host_ns
    veth_into(host_ns, "up0", outside, "10.73.0.100/24")
    create_switch(context(runtime, "switch.create", None), name="lan", uplink="up0")
    boot = {"mode": "grub", "kernel": str(tiny_guest.kernel), "initrd": str(tiny_guest.initrd)}
    names = ("burn", "disk", "net")
    consoles = {}
    driver = active_driver(runtime)
    try:
        for name in names:
            create_vm(context(runtime, "vm.create"), name, overrides={
                "memory": "128M", "disks": [{"size": "64M"}], "graphics": {"vnc": False},
                "boot": {**boot, "cmdline": tiny_guest.append(f"bhype.hostname={name}")}, "nics": [{"switch": "lan"}]})
            consoles[name] = Console(start_vm(context(runtime, "vm.start"), name))
        uuids = {row.name: row.uuid for row in list_vms(runtime)}
        for index, name in enumerate(names):
            ready = consoles[name].wait(rf"{READY_MARKER} hostname={name}")
            consoles[name].wait(r"# ", start=ready.end())
            consoles[name].run(f"ip addr replace 10.73.0.{index + 1}/24 dev eth0 && ip link set eth0 up", "IP")

        monitor = Monitor(runtime)
        sample_for(monitor, 6)  # a baseline: everybody idle

        consoles["burn"].run("(while :; do :; done) >/dev/null 2>&1 & echo $! >/tmp/burn.pid", "BURN")
        burn_start = sample_for(monitor, 12)
        burn = {name: series_max(monitor, uuids[name], "cpu_percent", burn_start) for name in names}
        assert burn["burn"] > 2 * max(burn["disk"], burn["net"]), burn
        consoles["burn"].run("kill $(cat /tmp/burn.pid)", "CALM")  # the others run faster without it

        consoles["disk"].run("for d in /dev/vda /dev/sda; do [ -b $d ] && dd if=/dev/zero of=$d bs=64k count=400 "
                             "conv=fsync 2>/dev/null; done", "DISK", timeout=240)
        # Written during the phase above: the samples taken while dd ran carry its bytes.
        disk_start = time.time() - 240
        sample_for(monitor, 4)
        written = {name: series_max(monitor, uuids[name], "disk_write_bps", disk_start) for name in names}
        assert written["disk"] > 100_000 and written["disk"] > 4 * max(written["burn"], written["net"]), written

        consoles["net"].run("ping -q -c 12 -s 8000 10.73.0.100 >/dev/null 2>&1 & true", "PING")
        net_start = sample_for(monitor, 10)
        sent = {name: series_max(monitor, uuids[name], "net0_tx_bps", net_start) for name in names}
        assert sent["net"] > 1000 and sent["net"] > 10 * max(sent["burn"], sent["disk"], 1), sent
        received = series_max(monitor, uuids["net"], "net0_rx_bps", net_start)
        assert received > 1000  # the echo replies come back through the same tap
        snapshot = monitor.tick()
        taps = {snapshot["vms"][uuids[name]]["nics"]["net0"]["tap"] for name in names}
        assert len(taps) == 3  # each VM's NIC is its own tap
    finally:
        for name in names:
            row = find_vm(runtime, name)
            vm_dir = open_datastore(runtime).vm_dir(name)
            if row is not None and driver.status(row.spec_model(), vm_dir).active:
                driver.force_stop(row.spec_model(), vm_dir)
