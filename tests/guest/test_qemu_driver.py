"""The QEMU driver on a real guest: the tiny test guest under TCG, supervised by a real daemon.

Guests are shared across the tests of this module to keep boots few (they run in file order):
``alpha`` (acpid on, VNC with a password) and ``beta`` (ignores ACPI) run at the same time,
``gamma`` reboots itself. Facts: qemu(1) and QMP of QEMU 7.2, RFB 3.8 (RFC 6143),
reference linux-test-host.md.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import stat
import struct
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bhype_core.drivers.base import Attachments, HypervisorFailed, VMState, VMStatus
from bhype_core.drivers.qemu import QemuDriver
from bhype_core.drivers.state import ProcessTable, read_json, supervisor_markers
from bhype_core.host.runner import LocalRunner
from bhype_core.spec import VMSpec, validate_spec
from bhype_core.testing.guest_image import READY_MARKER, GuestImage

pytestmark = [pytest.mark.guest, pytest.mark.slow]

BOOT_TIMEOUT = 180  # a busy 2-core machine under TCG; idle boots take a few seconds
VNC_PASSWORD = "s3cret8!"


class Lab:
    """The module's VMs: specs, directories, a driver, and cleanup of what a test left."""

    def __init__(self, root: Path, image: GuestImage) -> None:
        self.root = root
        self.image = image
        self.driver = self.new_driver()
        self.specs: dict[str, VMSpec] = {}
        self.started: dict[str, VMStatus] = {}

    def new_driver(self) -> QemuDriver:
        return QemuDriver(LocalRunner(), run_dir=self.root / "run", accel="tcg", start_timeout=60)

    def spec(self, name: str, *words: str, **extra: object) -> VMSpec:
        boot = {"mode": "grub", "kernel": str(self.image.kernel), "initrd": str(self.image.initrd)}
        spec = validate_spec(
            {"name": name, "memory": "128M", "boot": {**boot, "cmdline": self.image.append(*words)}, **extra}
        )
        self.specs[name] = spec
        (self.root / name).mkdir(exist_ok=True)
        return spec

    def vm_dir(self, name: str) -> Path:
        return self.root / name

    def start(self, name: str) -> VMStatus:
        status = self.driver.start(self.specs[name], self.vm_dir(name))
        self.started[name] = status
        return status

    def status(self, name: str) -> VMStatus:
        return self.driver.status(self.specs[name], self.vm_dir(name))

    def serial(self, name: str) -> str:
        try:
            return (self.vm_dir(name) / "serial.log").read_bytes().decode(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_serial(self, name: str, pattern: str, timeout: float = BOOT_TIMEOUT) -> str:
        deadline = time.monotonic() + timeout
        while not (match := re.search(pattern, self.serial(name))):
            status = self.status(name)
            if time.monotonic() > deadline or not status.active:
                raise AssertionError(
                    f"{name}: no {pattern!r} ({status.state.value}); serial:\n{self.serial(name)[-2000:]}"
                )
            time.sleep(0.5)
        return match.group(0)

    def cleanup(self) -> None:
        procs = ProcessTable(LocalRunner())
        for name, spec in self.specs.items():
            vm_dir = self.vm_dir(name)
            try:
                if self.driver.status(spec, vm_dir).active:
                    self.driver.force_stop(spec, vm_dir)
            except Exception:  # noqa: BLE001 - still kill below
                pass
            state = read_json(vm_dir / "state.json") or {}
            for pid, markers in (
                (state.get("hypervisor_pid"), (spec.instance_name,)),
                (state.get("supervisor_pid"), supervisor_markers(vm_dir)),
            ):
                if procs.alive(pid, markers):
                    subprocess.run(["kill", "-9", str(pid)], check=False)


@pytest.fixture(scope="module")
def lab(tiny_guest: GuestImage) -> Iterator[Lab]:
    # Under /tmp: QMP/serial unix socket paths must stay short (unix(7): 108 bytes).
    root = Path(tempfile.mkdtemp(prefix="bhype-qd-", dir="/tmp"))
    lab = Lab(root, tiny_guest)
    try:
        yield lab
    finally:
        lab.cleanup()
        shutil.rmtree(root, ignore_errors=True)


def command_line(pid: int) -> list[str]:
    return Path(f"/proc/{pid}/cmdline").read_bytes().decode().split("\0")


def test_start_returns_once_qemu_runs_two_vms_at_once(lab: Lab) -> None:
    lab.spec("alpha", "bhype.hostname=alpha", graphics={"vnc": True, "password": VNC_PASSWORD})
    lab.spec("beta", "bhype.hostname=beta", "bhype.ignore_acpi=1")

    alpha, beta = lab.start("alpha"), lab.start("beta")

    for name, status in (("alpha", alpha), ("beta", beta)):
        assert status.state is VMState.RUNNING and status.supervisor_pid
        argv = command_line(status.pid)
        assert argv[0] == "qemu-system-x86_64" and argv[argv.index("-name") + 1] == f"bhype-{name}"
        assert Path(status.consoles["serial"]["unix"]).exists()
    assert alpha.pid != beta.pid
    assert alpha.consoles["vnc"]["unix"].endswith("/vnc.sock") and "vnc" not in beta.consoles
    assert lab.driver.running_instances() == ["bhype-alpha", "bhype-beta"]


def test_serial_console_shows_the_guest(lab: Lab) -> None:
    assert lab.wait_serial("alpha", rf"{READY_MARKER} [^\r\n]*") == f"{READY_MARKER} hostname=alpha acpid=on"
    assert lab.wait_serial("beta", rf"{READY_MARKER} [^\r\n]*") == f"{READY_MARKER} hostname=beta acpid=off"


def test_vnc_listens_only_on_a_private_unix_socket(lab: Lab) -> None:
    # Issue 11: a loopback TCP port let any local account reach the console with the password
    # read from the world-readable database. Now: a unix socket in the VM's private directory,
    # no TCP listener, and the password is nowhere (command line, supervisor config, QMP).
    status = lab.started["alpha"]
    path = Path(status.consoles["vnc"]["unix"])
    info = os.lstat(path)
    assert stat.S_ISSOCK(info.st_mode) and stat.S_IMODE(info.st_mode) & 0o077 == 0  # only root connects
    argv = command_line(status.pid)
    assert argv[argv.index("-vnc") + 1] == f"unix:{path}"
    assert not any(VNC_PASSWORD in part for part in argv)
    assert VNC_PASSWORD not in (lab.vm_dir("alpha") / "supervisor.json").read_text()
    with socket.socket(socket.AF_UNIX) as vnc:
        vnc.settimeout(30)
        vnc.connect(str(path))
        assert vnc.recv(12) == b"RFB 003.008\n"
        vnc.sendall(b"RFB 003.008\n")
        count = vnc.recv(1)[0]
        assert list(vnc.recv(count)) == [1]  # security None: the directory is the gate
        vnc.sendall(b"\x01")
        assert struct.unpack(">I", vnc.recv(4))[0] == 0  # SecurityResult OK
        vnc.sendall(b"\x01")  # ClientInit, shared
        width, height = struct.unpack(">HH", vnc.recv(4))
    assert (width, height) > (0, 0)


def test_vm_survives_the_driver_object(lab: Lab) -> None:
    lab.driver = lab.new_driver()  # what an API/worker restart leaves: files and processes

    for name in ("alpha", "beta"):
        status = lab.status(name)
        assert status.state is VMState.RUNNING
        assert (status.pid, status.supervisor_pid) == (lab.started[name].pid, lab.started[name].supervisor_pid)


def test_graceful_stop_via_acpi_reaches_stopped(lab: Lab) -> None:
    pid = lab.started["alpha"].pid

    final = lab.driver.stop(lab.specs["alpha"], lab.vm_dir("alpha"), timeout=120)

    assert final.state is VMState.STOPPED and final.exit_status == 1
    assert final.detail == "stopped on request (guest powered off)"  # no force was needed
    assert final.history[-1]["note"] == "QMP SHUTDOWN reason guest-shutdown"
    assert "BHYPE-GUEST-ACPI-POWEROFF" in lab.serial("alpha")
    assert not ProcessTable(LocalRunner()).alive(pid)
    assert lab.driver.running_instances() == ["bhype-beta"]


def test_guest_ignoring_acpi_is_forced_after_the_timeout(lab: Lab) -> None:
    pid = lab.started["beta"].pid

    final = lab.driver.stop(lab.specs["beta"], lab.vm_dir("beta"), timeout=3)

    assert final.state is VMState.STOPPED
    assert "powered off by force" in final.detail and "within 3s" in final.detail
    assert final.history[-1]["note"] == "QMP SHUTDOWN reason host-qmp-quit"
    assert "BHYPE-GUEST-ACPI-POWEROFF" not in lab.serial("beta")
    assert not ProcessTable(LocalRunner()).alive(pid)


def test_guest_reboot_restarts_qemu(lab: Lab) -> None:
    lab.spec("gamma", "bhype.reboot_after=1")
    first = lab.start("gamma")
    lab.wait_serial("gamma", "BHYPE-GUEST-REBOOTING")

    deadline = time.monotonic() + BOOT_TIMEOUT
    while (status := lab.status("gamma")).restarts < 1 or status.state is not VMState.RUNNING:
        assert time.monotonic() < deadline and status.active, status
        time.sleep(0.2)

    assert status.pid != first.pid and status.supervisor_pid == first.supervisor_pid
    assert status.history[0]["exit_status"] == 0 and status.history[0]["note"] == "QMP SHUTDOWN reason guest-reset"
    lab.wait_serial("gamma", READY_MARKER)  # the new QEMU boots the guest again
    assert lab.driver.force_stop(lab.specs["gamma"], lab.vm_dir("gamma")).state is VMState.STOPPED


def test_qemu_refusing_the_command_line_fails_the_start_with_its_stderr(lab: Lab) -> None:
    spec = lab.spec("delta", extra={"qemu": ["-device", "bhype-no-such-device"]})

    with pytest.raises(HypervisorFailed) as failure:
        lab.start("delta")

    assert failure.value.exit_status == 1
    assert "'bhype-no-such-device' is not a valid device model name" in str(failure.value)
    status = lab.status("delta")
    assert status.state is VMState.STOPPED and status.exit_status == 1
    state = read_json(lab.vm_dir("delta") / "state.json") or {}
    assert not ProcessTable(LocalRunner()).alive(state.get("supervisor_pid"), supervisor_markers(lab.vm_dir("delta")))
    assert spec.instance_name not in lab.driver.running_instances()


def test_an_install_start_drops_the_iso_after_the_first_reboot(lab: Lab) -> None:
    # Issue 14 "Start plans": the ISO boots once, then the VM runs without it (vm-bhyve's
    # `vm install`, reference freebsd-host.md 1.7). The "installer" reboots once, through QMP
    # system_reset (SHUTDOWN reason host-qmp-system-reset: a reboot, exit status 0).
    from bhype_core.drivers.qmp import QMPClient

    iso = lab.root / "installer.iso"
    iso.write_bytes(b"\0" * 2048 * 16)
    spec = lab.spec("epsilon", cdrom="installer.iso")
    first = lab.driver.start(spec, lab.vm_dir("epsilon"), Attachments(cdrom_path=str(iso), start_mode="install"))
    lab.started["epsilon"] = first
    assert any("drive=cd0" in arg for arg in command_line(first.pid or 0))
    lab.wait_serial("epsilon", READY_MARKER)
    with QMPClient(lab.driver.ctl_socket(lab.vm_dir("epsilon")), timeout=10) as client:
        client.execute("system_reset")

    deadline = time.monotonic() + BOOT_TIMEOUT
    while (status := lab.status("epsilon")).restarts < 1 or status.state is not VMState.RUNNING:
        assert time.monotonic() < deadline and status.active, status
        time.sleep(0.2)

    again = command_line(status.pid or 0)
    assert status.pid != first.pid and spec.instance_name in again
    assert str(iso) not in " ".join(again) and not any("cd0" in arg for arg in again)
    assert (read_json(lab.vm_dir("epsilon") / "state.json") or {}).get("boot") == "disk"
    assert lab.driver.force_stop(spec, lab.vm_dir("epsilon")).state is VMState.STOPPED
