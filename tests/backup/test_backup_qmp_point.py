"""``snapshot`` mode on directory storage (issue 16): QEMU's consistent point through QMP.

A real TCG guest writes a counter to its disk several times a second; ``backup.run`` in mode
``snapshot`` freezes its disk (QMP overlay), copies the frozen base and merges the writes back
while it runs. The point is consistent (the restored guest boots and finds a whole counter
value no later than the last one written before the backup ended) and the guest never stopped
(same QEMU process; its counter went on during and after the backup).
"""

from __future__ import annotations

import re
import time

import pytest

from bhype_core.plugin_api import DriverCapability, active_driver

from .test_backup_guest import SECTOR, boot, guest_world, serial_log, status, type_line, wait_for  # noqa: F401

pytestmark = [pytest.mark.guest, pytest.mark.slow]
COUNTER_LOOP = (f"(i=0; while :; do i=$((i+1)); printf 'CNT%08d' $i | dd of=/dev/vda bs=512 seek={SECTOR} "
                "conv=fsync 2>/dev/null; echo TICK-$i; sleep 0.3; done) &")


def ticks(world, name) -> list[int]:
    return [int(n) for n in re.findall(r"TICK-(\d+)", serial_log(world, name))]


def start_counter(world, name) -> None:
    for _ in range(10):
        type_line(world, name, COUNTER_LOOP)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            if len(ticks(world, name)) >= 3:
                return
            time.sleep(0.3)
    raise AssertionError("the counter did not start")


def test_snapshot_mode_on_directory_storage_is_a_consistent_point_of_a_running_guest(guest_world):
    world = guest_world
    (world.root / "bk").mkdir()
    world.ok("backup.target_add", {"name": "usb", "destination": str(world.root / "bk")})
    world.ok("vm.create", {"name": "g1", "template": "tiny",
                           "overrides": {"disks": [{"size": "16M"}], "memory": "256M"}})
    assert DriverCapability.CONSISTENT_POINT in active_driver(world.runtime).capabilities
    boot(world, "g1")
    start_counter(world, "g1")
    pid = status(world, "g1").pid
    before = max(ticks(world, "g1"))

    result = world.ok("backup.run", {"vm": "g1", "target": "usb", "mode": "snapshot", "job": None})
    at_end = max(ticks(world, "g1"))
    assert result["consistency"] == "consistent" and not result["warnings"]
    assert status(world, "g1").pid == pid  # the same QEMU: never stopped or restarted
    assert at_end > before  # it counted while the backup ran
    vm_dir = world.root / "ds" / "vms" / "g1"
    assert not list(vm_dir.glob(".backup-freeze-*"))  # the overlay was merged back and removed
    wait_for(lambda: max(ticks(world, "g1")) >= at_end + 3, "the counter to go on after the backup")

    world.ok("backup.restore", {"point": result["point"], "vm": "g1", "as": "g1a"})
    boot(world, "g1a")
    command = f"dd if=/dev/vda bs=512 skip={SECTOR} count=1 2>/dev/null | head -c 11 | tr C c; echo"
    found = wait_for(lambda: type_line(world, "g1a", command) or re.search(r"cNT(\d{8})", serial_log(world, "g1a")),
                     "g1a to read its counter")
    restored = int(found.group(1))
    assert before <= restored <= at_end, (before, restored, at_end)
