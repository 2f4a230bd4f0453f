"""Suspend to disk and resume with the QEMU driver on a real guest (the tiny test guest under TCG).

A shell loop in the guest prints ``TICK <n> <boot_id>`` on the serial port every second; the VM
is suspended (QMP ``stop`` + ``migrate`` to an ``fd:`` the driver opened, then ``quit``) and
started again from the saved state (``-incoming defer`` + ``migrate-incoming``). The counter goes
on from where it was and the kernel's boot id is the same: the guest was resumed, not rebooted.
Facts: QEMU 7.2 ``qapi/migration.json``; reference linux-test-host.md.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import stat
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bhype_core.drivers.base import Attachments, VMState
from bhype_core.drivers.capabilities import Capability
from bhype_core.drivers.qemu import QemuDriver
from bhype_core.drivers.saved_state import RECORD_FILE, ResumeRefused
from bhype_core.errors import Conflict
from bhype_core.host.runner import LocalRunner
from bhype_core.spec import VMSpec, validate_spec
from bhype_core.testing.guest_image import READY_MARKER, GuestImage

pytestmark = [pytest.mark.guest, pytest.mark.slow]

WAIT = 300.0  # a ceiling for TCG on a loaded 2-core machine, not a timing assertion
TICKS = re.compile(r"TICK (\d+) ([0-9a-f-]{36})")
LOOP = ('i=0; while :; do i=$((i+1)); echo "TICK $i $(cat /proc/sys/kernel/random/boot_id)"; '
        "sleep 1; done &\n")


class Guest:
    """One VM of the QEMU driver with a serial console the test types into."""

    def __init__(self, root: Path, image: GuestImage) -> None:
        self.root = root
        self.driver = QemuDriver(LocalRunner(), run_dir=root / "run", accel="tcg", start_timeout=60)
        boot = {"mode": "grub", "kernel": str(image.kernel), "initrd": str(image.initrd),
                "cmdline": image.append("bhype.hostname=sleepy")}
        self.spec: VMSpec = validate_spec({"name": "sleepy", "memory": "128M", "boot": boot})
        self.vm_dir = root / "sleepy"
        self.vm_dir.mkdir()

    def serial(self) -> str:
        try:
            return (self.vm_dir / "serial.log").read_bytes().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_serial(self, pattern: str) -> re.Match[str]:
        deadline = time.monotonic() + WAIT
        while not (match := re.search(pattern, self.serial())):
            assert time.monotonic() < deadline, f"no {pattern!r} on the serial port:\n{self.serial()[-2000:]}"
            time.sleep(0.5)
        return match

    def type(self, text: str) -> None:
        path = self.driver.status(self.spec, self.vm_dir).consoles["serial"]["unix"]
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.connect(path)
            sock.sendall(text.encode())
            time.sleep(2)  # QEMU drops what the UART has not taken when the connection closes

    def ticks(self) -> list[tuple[int, str]]:
        return [(int(n), boot) for n, boot in TICKS.findall(self.serial())]


@pytest.fixture
def guest(tiny_guest: GuestImage) -> Iterator[Guest]:
    root = Path(tempfile.mkdtemp(prefix="bh-sus-", dir="/tmp"))  # short unix socket paths
    vm = Guest(root, tiny_guest)
    try:
        yield vm
    finally:
        try:
            vm.driver.force_stop(vm.spec, vm.vm_dir)
        finally:
            shutil.rmtree(root, ignore_errors=True)


def test_a_suspended_guest_resumes_where_it_was_without_rebooting(guest: Guest) -> None:
    driver, spec, vm_dir = guest.driver, guest.spec, guest.vm_dir
    assert Capability.SUSPEND in driver.capabilities and driver.suspend_supported()
    with pytest.raises(Conflict, match="only a running VM can be suspended"):
        driver.suspend(spec, vm_dir, timeout=60)
    driver.start(spec, vm_dir)
    guest.wait_serial(READY_MARKER)
    deadline = time.monotonic() + WAIT
    while len(guest.ticks()) < 3:  # a shell still starting swallows what is typed: type again
        assert time.monotonic() < deadline, guest.serial()[-2000:]
        if not guest.ticks():
            guest.type(LOOP)
        time.sleep(1)

    status = driver.suspend(spec, vm_dir, timeout=120)
    before = guest.ticks()
    assert status.state is VMState.STOPPED and not status.active
    assert status.suspended and status.suspended["size"] > 0
    assert "suspended to disk" in status.detail and driver.running_instances() == []
    saved = driver.saved_state(vm_dir)
    assert saved.driver == "qemu" and saved.files == [str(vm_dir / "saved-state")]
    for name in (*saved.files, str(vm_dir / RECORD_FILE)):
        assert stat.S_IMODE(os.lstat(name).st_mode) == 0o600
    last, boot_id = before[-1]
    assert len({boot for _, boot in before}) == 1

    status = driver.start(spec, vm_dir, Attachments(restore_from=saved.path))
    assert status.state is VMState.RUNNING and status.suspended is None
    match = guest.wait_serial(rf"TICK {last + 2} ")
    after = guest.ticks()
    # Counted on from where it was, in the same boot (QEMU's log file starts anew per process).
    assert after[0][0] in (last, last + 1), (before[-3:], after[:3])
    assert {boot for _, boot in after} == {boot_id}, match
    assert READY_MARKER not in guest.serial()  # init never ran again
    assert driver.saved_state(vm_dir) is None and not (vm_dir / "saved-state").exists()


def test_resume_is_refused_when_the_devices_changed(guest: Guest, tiny_guest: GuestImage) -> None:
    driver, spec, vm_dir = guest.driver, guest.spec, guest.vm_dir
    driver.start(spec, vm_dir)
    guest.wait_serial(READY_MARKER)
    driver.suspend(spec, vm_dir, timeout=120)
    saved = driver.saved_state(vm_dir)
    bigger = validate_spec({**spec.model_dump(mode="json"), "memory": "192M"})
    with pytest.raises(ResumeRefused, match="devices changed since it was suspended.*discard_saved_state"):
        driver.start(bigger, vm_dir, Attachments(restore_from=saved.path))
    assert not driver.status(spec, vm_dir).active and driver.saved_state(vm_dir) == saved
    driver.discard_saved_state(vm_dir)
    assert driver.saved_state(vm_dir) is None and not Path(saved.path).exists()
    assert driver.start(spec, vm_dir).state is VMState.RUNNING  # a fresh boot
    guest.wait_serial(READY_MARKER)
