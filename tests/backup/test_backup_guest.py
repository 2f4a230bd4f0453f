"""Backups of a real running guest (QEMU under TCG, the tiny test guest) proven by restores:
a marker is written to the guest's disk through its serial console between backups, points
are taken in ``stop`` mode (the VM is stopped, copied, started again: the window is recorded)
and in ``crash`` mode (copied while it runs), and each point is restored as a new VM that is
booted and asked, on its serial console, for the marker it must hold."""

from __future__ import annotations

import shutil
import socket
import tempfile
import time
from pathlib import Path

import pytest

from bhype_core.drivers.select import select_driver
from bhype_core.plugin_api import find_vm
from bhype_core.spec import validate_spec
from bhype_core.testing.guest_image import READY_MARKER

from .world import close_world, make_world

pytestmark = [pytest.mark.guest, pytest.mark.slow]
WAIT = 240.0  # seconds; TCG on a loaded machine, not a timing assertion
SECTOR = 4096  # where the marker goes on the raw disk (512-byte sectors)


@pytest.fixture
def guest_world(tiny_guest, local_user):
    root = Path(tempfile.mkdtemp(prefix="bh-bk-", dir="/tmp"))  # unix socket paths stay short
    (root / "templates").mkdir()
    (root / "templates" / "tiny.toml").write_text(tiny_guest.template_toml())
    world = make_world(root, local_user, vm={"templates_dir": str(root / "templates"), "stop_timeout": 90})
    try:
        yield world
    finally:
        driver = select_driver(world.runtime)
        for name in ("g1", "g1a", "g1b"):
            row = find_vm(world.runtime, name)
            if row is not None:
                try:
                    driver.force_stop(validate_spec(row.spec), root / "ds" / "vms" / name)
                except Exception:  # noqa: BLE001 - best effort cleanup
                    pass
        close_world(world)
        shutil.rmtree(root, ignore_errors=True)


def status(world, name):
    row = find_vm(world.runtime, name)
    return select_driver(world.runtime).status(validate_spec(row.spec), world.root / "ds" / "vms" / name)


def serial_log(world, name) -> str:
    path = Path(status(world, name).consoles["serial"]["log"])
    return path.read_text(errors="replace") if path.exists() else ""


def wait_for(check, what: str):
    deadline = time.monotonic() + WAIT
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)
    return value


def type_line(world, name, command: str) -> None:
    """Type at the guest's serial shell (a bare CR first ends busybox's cursor query)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(status(world, name).consoles["serial"]["unix"])
        sock.sendall(b"\r")
        time.sleep(1.5)
        sock.sendall(command.encode() + b"\r")
        time.sleep(0.5)


def boot(world, name) -> None:
    world.ok("vm.start", {"name": name})
    wait_for(lambda: READY_MARKER in serial_log(world, name), f"{name} to boot")


def write_marker(world, name, marker: str) -> None:
    """Write ``marker`` (lower case) at sector SECTOR of /dev/vda and fsync it."""
    command = f"echo {marker} | dd of=/dev/vda bs=512 seek={SECTOR} conv=fsync && echo WROTE-$((6*7))-{marker}"
    wait_for(lambda: type_line(world, name, command) or f"WROTE-42-{marker}" in serial_log(world, name),
             f"{name} to write {marker}")


def read_marker(world, name, marker: str) -> bool:
    """Whether the disk holds ``marker``: the guest prints it upper-cased (the typed command,
    echoed on the console, holds it only in lower case)."""
    command = f"dd if=/dev/vda bs=512 skip={SECTOR} count=1 2>/dev/null | head -c {len(marker)} | tr a-z A-Z; echo"
    return bool(wait_for(lambda: type_line(world, name, command) or marker.upper() in serial_log(world, name)
                         or "NOTHING" in serial_log(world, name), f"{name} to read its disk"))


def test_stop_and_crash_points_of_a_running_guest_restore_and_boot(guest_world, tmp_path):
    world = guest_world
    (world.root / "bk").mkdir()
    world.ok("backup.target_add", {"name": "usb", "destination": str(world.root / "bk")})
    world.ok("vm.create", {"name": "g1", "template": "tiny",
                           "overrides": {"disks": [{"size": "16M"}], "memory": "256M"}})
    boot(world, "g1")
    write_marker(world, "g1", "bkmark-one")
    first = world.ok("backup.run", {"vm": "g1", "target": "usb", "mode": "stop", "job": None})
    assert first["consistency"] == "consistent" and first["stop_window"]["seconds"] > 0
    assert status(world, "g1").state == "running"  # started again after the copy
    wait_for(lambda: serial_log(world, "g1").count(READY_MARKER) >= 1, "g1 to boot again")
    write_marker(world, "g1", "bkmark-two")
    second = world.ok("backup.run", {"vm": "g1", "target": "usb", "mode": "crash", "job": None})
    assert second["consistency"] == "crash-consistent" and second["warnings"]
    assert second["basis"] == first["path"] and second["literal_bytes"] < 4 * 2**20
    assert status(world, "g1").state == "running"  # a crash-consistent copy never stops it

    world.ok("backup.restore", {"point": first["point"], "vm": "g1", "as": "g1a"})
    boot(world, "g1a")
    assert read_marker(world, "g1a", "bkmark-one") and "BKMARK-ONE" in serial_log(world, "g1a")
    world.ok("vm.force_stop", {"name": "g1a"})
    world.ok("backup.restore", {"point": second["point"], "vm": "g1", "as": "g1b"})
    boot(world, "g1b")
    assert read_marker(world, "g1b", "bkmark-two") and "BKMARK-TWO" in serial_log(world, "g1b")
