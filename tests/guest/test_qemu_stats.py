"""Driver statistics (issue 12) on a real QEMU: the tiny guest under TCG with one raw disk; CPU
time and RSS come from proc(5) of the QEMU process, disk counters from QMP query-blockstats."""

from __future__ import annotations

import os
import re
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bhype_core.drivers.base import Attachments
from bhype_core.drivers.capabilities import Capability
from bhype_core.drivers.qemu import QemuDriver
from bhype_core.errors import Conflict
from bhype_core.host.runner import LocalRunner
from bhype_core.spec import validate_spec
from bhype_core.testing.guest_image import READY_MARKER, GuestImage

pytestmark = [pytest.mark.guest, pytest.mark.slow]

BOOT_TIMEOUT = 180  # a busy 2-core machine under TCG


@pytest.fixture
def vm_dir() -> Iterator[Path]:
    # Under /tmp: QMP/serial unix socket paths must stay short (unix(7): 108 bytes).
    root = Path(tempfile.mkdtemp(prefix="bhype-st-", dir="/tmp"))
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_stats_of_a_running_guest(tiny_guest: GuestImage, vm_dir: Path) -> None:
    driver = QemuDriver(LocalRunner(), run_dir=vm_dir / "run", accel="tcg", start_timeout=60)
    assert {Capability.LIVE_STATS, Capability.DISK_STATS} <= driver.capabilities
    boot = {"mode": "grub", "kernel": str(tiny_guest.kernel), "initrd": str(tiny_guest.initrd),
            "cmdline": tiny_guest.append("bhype.hostname=stats")}
    spec = validate_spec({"name": "stats", "memory": "128M", "boot": boot, "disks": [{"size": "16M"}]})
    disk = vm_dir / "disk0.img"
    with open(disk, "wb") as handle:
        handle.truncate(16 * 2**20)

    with pytest.raises(Conflict, match="no statistics"):
        driver.stats(spec, vm_dir)
    status = driver.start(spec, vm_dir, Attachments(disk_paths=[str(disk)]))
    try:
        deadline = time.monotonic() + BOOT_TIMEOUT
        while not re.search(READY_MARKER, (vm_dir / "serial.log").read_bytes().decode(errors="replace")
                            if (vm_dir / "serial.log").exists() else ""):
            assert time.monotonic() < deadline and driver.status(spec, vm_dir).active, "guest did not boot"
            time.sleep(0.5)
        first = driver.stats(spec, vm_dir)
        second = driver.stats(spec, vm_dir)
    finally:
        driver.force_stop(spec, vm_dir)

    assert first.pid == status.pid
    # The guest booted a kernel under TCG: QEMU used CPU time and holds guest RAM.
    assert first.cpu_seconds is not None and first.cpu_seconds > 0
    assert second.cpu_seconds is not None and second.cpu_seconds >= first.cpu_seconds
    assert first.rss_bytes is not None and first.rss_bytes > 16 * 2**20
    # The guest kernel probed the virtio disk (partition table): QMP counted the reads.
    assert "disk0" in first.disks
    assert first.disks["disk0"].read_ops and first.disks["disk0"].read_bytes
    assert first.to_dict()["disks"]["disk0"]["read_bytes"] == first.disks["disk0"].read_bytes
    assert os.sysconf("SC_CLK_TCK") == driver._clock_ticks()
