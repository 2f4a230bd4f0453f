"""Dirty-block tracking of a running QEMU VM (issue 17, capability ``DIRTY_TRACKING``): the
driver seam ``track_dirty`` against a real QEMU 7.2.

Writes at known offsets (``qemu-io`` through the monitor, and the real tiny guest under TCG
writing with ``dd``) must come back as exactly those extents (rounded to the bitmap's 64 KiB
granularity), each write in exactly one pass, and the last pass read while the guest powers
off (``vm.stop``'s ACPI request) before QEMU ends. The pure parts are checked against a
recorded ``qemu-img map`` answer; bhyve declares no such capability.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bhype_core.drivers.base import Attachments
from bhype_core.drivers.bhyve import BhyveDriver
from bhype_core.drivers.capabilities import Capability
from bhype_core.drivers.dirty import covering_blocks, merge_extents
from bhype_core.drivers.qemu import QemuDriver
from bhype_core.drivers.qemu_dirty import QemuDirtyTracker, parse_dirty_map
from bhype_core.drivers.qmp import QMPClient
from bhype_core.errors import NotSupported
from bhype_core.host.runner import LocalRunner
from bhype_core.spec import validate_spec
from bhype_core.testing.guest_image import READY_MARKER, GuestImage

FIXTURES = Path(__file__).parent / "fixtures"
WAIT = 240.0  # TCG on a loaded 2-core machine; never a timing assertion
KIB, MIB = 1024, 1024 * 1024


def test_dirty_map_from_a_recorded_answer():
    text = (FIXTURES / "qemu-img-map-dirty.json").read_text()  # QEMU 7.2, x-dirty-bitmap: dirty = data false
    assert parse_dirty_map(text) == [(1 * MIB, 64 * KIB), (10 * MIB, 3 * MIB)]
    assert parse_dirty_map("[]") == []


def test_extents_merge_and_cover_blocks():
    assert merge_extents([(10, 5), (0, 10), (30, 1), (15, 2)]) == [(0, 17), (30, 1)]
    assert covering_blocks([(MIB - 1, 2), (5 * MIB, 64 * KIB)], MIB, 8 * MIB) == [0, MIB, 5 * MIB]
    assert covering_blocks([(7 * MIB, 4 * MIB)], MIB, 8 * MIB) == [7 * MIB]  # clipped to the disk


def test_bhyve_has_no_dirty_tracking(tmp_path):
    driver = BhyveDriver.__new__(BhyveDriver)  # the capability and the refusal need no host
    assert Capability.DIRTY_TRACKING not in driver.capabilities
    spec = validate_spec({"name": "b", "disks": [{"size": "1M"}]})
    with pytest.raises(NotSupported, match="dirty-block tracking"):
        driver.track_dirty(spec, tmp_path, [str(tmp_path / "disk0.img")])


@pytest.fixture
def vm_dir() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="bhype-dt-", dir="/tmp"))  # short unix socket paths
    yield root
    shutil.rmtree(root, ignore_errors=True)


def qemu_io(ctl: Path, command: str) -> None:
    with QMPClient(ctl, timeout=10) as client:
        client.execute("human-monitor-command", {"command-line": f'qemu-io disk0 "{command}"'})


def bitmaps(ctl: Path) -> list[str]:
    with QMPClient(ctl, timeout=10) as client:
        inserted = client.execute("query-block")[0]["inserted"]
        return [b["name"] for b in inserted.get("dirty-bitmaps") or []]


def test_writes_at_known_offsets_are_exactly_the_dirty_extents(vm_dir: Path) -> None:
    """A paused QEMU (no guest) whose disk gets writes through the monitor's qemu-io."""
    disk, ctl = vm_dir / "disk0.img", vm_dir / "qmp-ctl.sock"
    with open(disk, "wb") as handle:
        handle.truncate(64 * MIB)
    qemu = subprocess.Popen(["qemu-system-x86_64", "-machine", "q35", "-accel", "tcg", "-display", "none",
                             "-nodefaults", "-S", "-drive", f"if=none,id=disk0,format=raw,file={disk}",
                             "-device", "virtio-blk-pci,drive=disk0", "-qmp", f"unix:{ctl},server=on,wait=off"])
    try:
        QMPClient(ctl, timeout=30).connect().close()
        tracker = QemuDirtyTracker(LocalRunner(), ctl, vm_dir / "nbd.sock", [str(disk)])
        qemu_io(ctl, "write -P 0x11 0 4k")  # before tracking: never reported
        tracker.start()
        qemu_io(ctl, "write -P 0x55 1M 64k")
        qemu_io(ctl, "write -P 0x56 10M 3M")
        assert tracker.changed() == {str(disk): [(1 * MIB, 64 * KIB), (10 * MIB, 3 * MIB)]}
        qemu_io(ctl, "write -P 0x57 20M 4k")  # less than the granularity: its 64 KiB
        qemu_io(ctl, "write -P 0x58 40M 128k")
        assert tracker.changed() == {str(disk): [(20 * MIB, 64 * KIB), (40 * MIB, 128 * KIB)]}
        assert tracker.changed() == {str(disk): []}  # each write in exactly one pass
        assert len(bitmaps(ctl)) == 1  # only the current generation is kept
        tracker.close()
        assert bitmaps(ctl) == []
        with QMPClient(ctl, timeout=10) as client:
            assert client.execute("query-block-exports") == []
    finally:
        qemu.kill()
        qemu.wait()


def serial(vm_dir: Path) -> str:
    log = vm_dir / "serial.log"
    return log.read_bytes().decode(errors="replace") if log.exists() else ""


def wait_for(check, what: str):
    deadline = time.monotonic() + WAIT
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.3)
    return value


def type_line(path: str, line: str) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.connect(path)
        sock.sendall(b"\r")
        time.sleep(1.0)
        sock.sendall(line.encode() + b"\r")
        time.sleep(0.3)


def guest_writes(console: str, vm_dir: Path, mark: str, seek_64k: int, count: int) -> None:
    """The guest writes ``count`` × 64 KiB of random data at ``seek_64k`` × 64 KiB of its disk."""
    type_line(console, f"dd if=/dev/urandom of=/dev/vda bs=64k seek={seek_64k} count={count} conv=fsync "
                       f"2>/dev/null && echo DONE-''{mark}")  # the echo of the line itself never matches
    wait_for(lambda: f"DONE-{mark}" in serial(vm_dir), f"the guest's write {mark}")


@pytest.mark.guest
@pytest.mark.slow
def test_a_guest_s_writes_are_tracked_and_the_last_ones_read_at_power_off(tiny_guest: GuestImage,
                                                                           vm_dir: Path) -> None:
    driver = QemuDriver(LocalRunner(), run_dir=vm_dir / "run", accel="tcg", start_timeout=60)
    assert Capability.DIRTY_TRACKING in driver.capabilities
    boot = {"mode": "grub", "kernel": str(tiny_guest.kernel), "initrd": str(tiny_guest.initrd),
            "cmdline": tiny_guest.append("bhype.hostname=dirty")}
    spec = validate_spec({"name": "dirty", "memory": "128M", "boot": boot, "disks": [{"size": "32M"}]})
    disk = vm_dir / "disk0.img"
    with open(disk, "wb") as handle:
        handle.truncate(32 * MIB)
    status = driver.start(spec, vm_dir, Attachments(disk_paths=[str(disk)]))
    try:
        console = status.consoles["serial"]["unix"]
        wait_for(lambda: READY_MARKER in serial(vm_dir), "the guest to boot")
        tracker = driver.track_dirty(spec, vm_dir, [str(disk)])
        tracker.start()
        guest_writes(console, vm_dir, "a", 100, 1)  # 6.25 MiB
        guest_writes(console, vm_dir, "b", 300, 2)  # 18.75 MiB, 128 KiB
        assert tracker.changed() == {str(disk): [(100 * 64 * KIB, 64 * KIB), (300 * 64 * KIB, 128 * KIB)]}
        guest_writes(console, vm_dir, "c", 20, 3)
        with tracker.stopping() as final:
            stopped = driver.stop(spec, vm_dir, 120)
        assert not stopped.active and not driver.status(spec, vm_dir).active
        assert final.extents == {str(disk): [(20 * 64 * KIB, 3 * 64 * KIB)]}, final.detail
        tracker.close()  # QEMU is gone: nothing to release, no error
    finally:
        driver.force_stop(spec, vm_dir)
