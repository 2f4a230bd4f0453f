"""A consistent point of a running QEMU VM (issue 16): the driver seam ``freeze_disks`` /
``thaw_disks`` on the real tiny guest under TCG while it writes a counter to its disk.

While frozen the base image does not change although the guest keeps writing (its writes go to
a qcow2 overlay that ``qemu-img check`` finds clean), a guest reboot resets in place instead of
ending QEMU (``set-action``), and the thaw merges the writes back (active ``block-commit`` +
pivot): the same QEMU process runs on the base image alone and the counter went on. The pure
parts are checked against a recorded ``query-block`` reply; bhyve declares no such capability.
"""

from __future__ import annotations

import hashlib
import json
import re
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
from bhype_core.drivers.qemu import QemuDriver
from bhype_core.drivers.qemu_freeze import parse_block_chains, snapshot_transaction
from bhype_core.drivers.qmp import QMPClient
from bhype_core.errors import NotSupported
from bhype_core.host.runner import LocalRunner
from bhype_core.spec import validate_spec
from bhype_core.testing.guest_image import READY_MARKER, GuestImage

FIXTURES = Path(__file__).parent / "fixtures"
WAIT = 240.0  # TCG on a loaded 2-core machine; never a timing assertion
SECTOR = 4096  # where the guest writes its counter (512-byte sectors)
COUNTER_LOOP = ("(i=0; while :; do i=$((i+1)); printf 'CNT%08d' $i | dd of=/dev/vda bs=512 seek=4096 "
                "conv=fsync 2>/dev/null; echo TICK-$i; sleep 0.3; done) &")


def test_query_block_chains_from_a_recorded_reply():
    sample = json.loads((FIXTURES / "qmp-query-block-frozen.json").read_text())
    assert parse_block_chains(sample["before"]) == {"disk0": ["/tmp/qf/d.img"]}
    assert parse_block_chains(sample["during"]) == {"disk0": ["/tmp/qf/.backup-freeze-disk0.qcow2", "/tmp/qf/d.img"]}
    assert parse_block_chains([{"device": "cd0"}]) == {"cd0": []}  # an empty drive


def test_snapshot_transaction_takes_every_disk_at_once():
    actions = snapshot_transaction({"disk0": Path("/v/a.qcow2"), "disk1": Path("/v/b.qcow2")})["actions"]
    assert [a["type"] for a in actions] == ["blockdev-snapshot-sync"] * 2
    assert actions[1]["data"] == {"device": "disk1", "snapshot-file": "/v/b.qcow2", "format": "qcow2",
                                  "mode": "absolute-paths"}


def test_bhyve_has_no_consistent_point(tmp_path):
    driver = BhyveDriver.__new__(BhyveDriver)  # the capability and the refusal need no host
    assert Capability.CONSISTENT_POINT not in driver.capabilities
    spec = validate_spec({"name": "b", "disks": [{"size": "1M"}]})
    with pytest.raises(NotSupported, match="consistent point"):
        driver.freeze_disks(spec, tmp_path, [str(tmp_path / "disk0.img")])


@pytest.fixture
def vm_dir() -> Iterator[Path]:
    root = Path(tempfile.mkdtemp(prefix="bhype-fz-", dir="/tmp"))  # short unix socket paths
    yield root
    shutil.rmtree(root, ignore_errors=True)


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


def ticks(vm_dir: Path, boot: int = 0) -> list[int]:
    """The counter values the guest printed since its ``boot``-th boot (0: the first)."""
    text = serial(vm_dir).split(READY_MARKER)[boot + 1] if serial(vm_dir).count(READY_MARKER) > boot else ""
    return [int(n) for n in re.findall(r"TICK-(\d+)", text)]


def start_counter(console: str, vm_dir: Path, boot: int = 0) -> None:
    """Start the counter loop once (typed again only if it never printed: a lost keystroke)."""
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        type_line(console, COUNTER_LOOP)
        seen = time.monotonic() + 15
        while time.monotonic() < seen:
            if len(ticks(vm_dir, boot)) >= 3:
                return
            time.sleep(0.3)
    raise AssertionError("the counter did not start")


def counter_on(disk: Path) -> int:
    with open(disk, "rb") as handle:
        handle.seek(SECTOR * 512)
        found = re.match(rb"CNT(\d{8})", handle.read(11))
    return int(found.group(1)) if found else 0


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def chain(driver: QemuDriver, vm_dir: Path) -> list[str]:
    with QMPClient(driver.ctl_socket(vm_dir), timeout=10) as client:
        return parse_block_chains(client.execute("query-block"))["disk0"]


@pytest.mark.guest
@pytest.mark.slow
def test_freeze_holds_the_disk_while_the_guest_runs_and_thaw_merges_its_writes(tiny_guest: GuestImage,
                                                                               vm_dir: Path) -> None:
    driver = QemuDriver(LocalRunner(), run_dir=vm_dir / "run", accel="tcg", start_timeout=60)
    assert Capability.CONSISTENT_POINT in driver.capabilities
    boot = {"mode": "grub", "kernel": str(tiny_guest.kernel), "initrd": str(tiny_guest.initrd),
            "cmdline": tiny_guest.append("bhype.hostname=freeze")}
    spec = validate_spec({"name": "freeze", "memory": "128M", "boot": boot, "disks": [{"size": "16M"}]})
    disk = vm_dir / "disk0.img"
    with open(disk, "wb") as handle:
        handle.truncate(16 * 2**20)
    status = driver.start(spec, vm_dir, Attachments(disk_paths=[str(disk)]))
    try:
        console = status.consoles["serial"]["unix"]
        wait_for(lambda: READY_MARKER in serial(vm_dir), "the guest to boot")
        start_counter(console, vm_dir)

        frozen = driver.freeze_disks(spec, vm_dir, [str(disk)])
        overlay = frozen.overlays["disk0"]
        assert frozen.disks == {"disk0": disk} and overlay.exists()
        assert chain(driver, vm_dir) == [str(overlay), str(disk)]
        held, before = counter_on(disk), digest(disk)
        at_freeze = max(ticks(vm_dir))
        wait_for(lambda: max(ticks(vm_dir)) >= at_freeze + 5, "the guest to keep counting while frozen")
        assert digest(disk) == before and counter_on(disk) == held  # the point does not move
        assert held <= at_freeze + 1
        check = subprocess.run(["qemu-img", "check", "-U", str(overlay)], capture_output=True, text=True)
        assert check.returncode == 0, check.stdout + check.stderr
        # A guest reboot while frozen resets in place: the same QEMU keeps the overlay.
        boots = serial(vm_dir).count(READY_MARKER)
        type_line(console, "reboot")
        wait_for(lambda: serial(vm_dir).count(READY_MARKER) > boots, "the guest to boot again")
        assert driver.status(spec, vm_dir).pid == status.pid
        assert chain(driver, vm_dir) == [str(overlay), str(disk)]
        start_counter(console, vm_dir, boot=boots)
        after_reboot = max(ticks(vm_dir, boots))

        driver.thaw_disks(spec, vm_dir, frozen)
        assert driver.status(spec, vm_dir).pid == status.pid  # it never stopped
        assert chain(driver, vm_dir) == [str(disk)] and not overlay.exists()
        # The writes made while frozen are in the base image now, and new ones land there.
        assert counter_on(disk) >= after_reboot
        wait_for(lambda: counter_on(disk) > after_reboot + 3, "the counter to go on in the base image")
        # A guest reboot after the thaw ends QEMU again (-no-reboot restored): the supervisor
        # restarts it on the base image.
        type_line(console, "reboot")
        wait_for(lambda: (driver.status(spec, vm_dir).pid or status.pid) != status.pid, "a new QEMU after the reboot")
    finally:
        driver.force_stop(spec, vm_dir)
