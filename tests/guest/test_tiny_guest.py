"""The tiny test guest boots for real under QEMU/TCG and behaves as the VM tests rely on."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bhype_core.drivers.qmp import QMPCommandError
from bhype_core.testing.guest_image import READY_MARKER, GuestImage
from bhype_core.testing.qemu_guest import GuestFiles, QemuGuest, qemu_argv, short_workdir
from bhype_core.testing.screenshot import read_png

pytestmark = [pytest.mark.guest, pytest.mark.slow]

BOOT_TIMEOUT = 180  # a busy 2-core machine under TCG; idle boots take a few seconds


@pytest.fixture
def boot(tiny_guest: GuestImage) -> Iterator:
    """``boot(*cmdline_words, no_reboot=False)`` starts the tiny guest; all are stopped after."""
    started: list[QemuGuest] = []
    with short_workdir() as workdir:

        def start(*words: str, no_reboot: bool = False) -> QemuGuest:
            files = GuestFiles(workdir / f"g{len(started)}")
            append = tiny_guest.append(*words)
            argv = qemu_argv(files, tiny_guest.kernel, tiny_guest.initrd, append, no_reboot=no_reboot)
            guest = QemuGuest.start(files, argv)
            started.append(guest)
            return guest

        try:
            yield start
        finally:
            for guest in started:
                guest.stop()


def ready_line(guest: QemuGuest) -> str:
    return guest.wait_for_serial(rf"{READY_MARKER} [^\r\n]*", timeout=BOOT_TIMEOUT).group(0)


def test_boots_with_hostname_and_powers_off_on_acpi(boot) -> None:
    guest = boot("bhype.hostname=tiny-one")
    assert ready_line(guest) == f"{READY_MARKER} hostname=tiny-one acpid=on"
    assert guest.qmp.execute("query-status")["status"] == "running"
    with pytest.raises(QMPCommandError) as error:
        guest.qmp.execute("bhype-no-such-command")
    assert error.value.error_class == "CommandNotFound"

    guest.qmp.execute("system_powerdown")

    # acpid runs the power-button handler, which powers the guest off, which ends QEMU.
    assert guest.wait_exit(timeout=120) == 0
    assert "BHYPE-GUEST-ACPI-POWEROFF" in guest.serial_text()
    assert "reboot: Power down" in guest.serial_text()


def test_guest_ignoring_acpi_keeps_running_until_quit(boot) -> None:
    guest = boot("bhype.ignore_acpi=1")
    assert ready_line(guest) == f"{READY_MARKER} hostname=bhype-guest acpid=off"

    guest.qmp.execute("system_powerdown")
    guest.qmp.wait_event("POWERDOWN", timeout=10)
    time.sleep(3)  # a guest with acpid powers off well within this (previous test)

    # Still alive: its serial shell answers, and QEMU reports it running.
    guest.type_until("echo still-$((40 + 2))\n", r"still-42", timeout=60)
    assert guest.process.poll() is None
    assert guest.qmp.execute("query-status")["status"] == "running"
    assert "BHYPE-GUEST-ACPI-POWEROFF" not in guest.serial_text()

    guest.qmp.execute("quit")
    assert guest.wait_exit(timeout=30) == 0


def test_guest_reboot_ends_qemu_with_guest_reset(boot) -> None:
    guest = boot("bhype.reboot_after=1", no_reboot=True)
    qmp = guest.qmp  # connect before the guest reboots, to receive the SHUTDOWN event
    ready_line(guest)

    event = qmp.wait_event("SHUTDOWN", timeout=120)

    assert event["data"] == {"guest": True, "reason": "guest-reset"}
    assert guest.wait_exit(timeout=30) == 0
    assert "BHYPE-GUEST-REBOOTING" in guest.serial_text()


def test_vga_console_shows_text_and_vnc_answers(boot, tmp_path: Path) -> None:
    guest = boot("bhype.hostname=screen-test")
    ready_line(guest)
    shot = tmp_path / "screen.png"

    guest.qmp.execute("screendump", {"filename": str(shot), "format": "png"})

    picture = read_png(shot)
    # The VGA text console: 720x400 in text mode, many glyph pixels over a black background.
    assert picture.width >= 640 and picture.height >= 400
    assert len(picture.colours()) > 1
    lit = sum(1 for row in picture.rows for i in range(0, len(row), 3) if any(row[i : i + 3]))
    assert lit > 1000

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as vnc:
        vnc.settimeout(30)
        vnc.connect(str(guest.files.vnc))
        assert vnc.recv(12).startswith(b"RFB 003.")  # RFC 6143 7.1.1: ProtocolVersion
