"""Boot test guests in QEMU under TCG and watch them: serial log, QMP, exit status.

Test infrastructure only (the product's QEMU driver builds its own argv from a VM spec). The
serial port is a unix socket *and* a log file (``-chardev socket,…,logfile=``), so nothing the
guest prints is lost before a test connects; QMP and VNC are unix sockets, so no port is
allocated. Flags follow qemu-system-x86_64(1) of QEMU 7.2.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from bhype_core.drivers.qmp import QMPClient, QMPError


@contextmanager
def short_workdir(prefix: str = "bhype-q-") -> Iterator[Path]:
    """A fresh directory under ``/tmp`` for a guest's sockets, removed afterwards.

    Unix socket paths are limited to 107 bytes (unix(7)); pytest's ``tmp_path`` can be longer.
    """
    path = Path(tempfile.mkdtemp(prefix=prefix, dir="/tmp"))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


@dataclass(frozen=True)
class GuestFiles:
    """The sockets and logs of one guest, all inside ``workdir``."""

    workdir: Path

    @property
    def qmp(self) -> Path:
        return self.workdir / "qmp.sock"

    @property
    def serial_socket(self) -> Path:
        return self.workdir / "serial.sock"

    @property
    def serial_log(self) -> Path:
        return self.workdir / "serial.log"

    @property
    def vnc(self) -> Path:
        return self.workdir / "vnc.sock"

    @property
    def qemu_log(self) -> Path:
        return self.workdir / "qemu.log"


def qemu_argv(
    files: GuestFiles,
    kernel: Path,
    initrd: Path,
    append: str,
    *,
    memory_mb: int = 256,
    cpus: int = 1,
    cpu: str = "qemu64",
    no_reboot: bool = False,
    extra: Sequence[str] = (),
) -> list[str]:
    """The ``qemu-system-x86_64`` argv for a direct-kernel-boot test guest.

    ``-accel tcg`` always: nested KVM hangs on our machines. ``-nodefaults`` drops the default
    NIC, CD-ROM and monitor, so only what a test asks for exists; ``-vga std`` keeps the VGA
    text console for VNC and ``screendump``. No ``-no-shutdown``: a guest that powers off ends
    QEMU, which is what tests (and a supervisor) watch for. ``no_reboot`` makes a guest reboot
    end QEMU too (``SHUTDOWN`` event, reason ``guest-reset``), as a supervisor that restarts
    VMs itself wants.
    """
    serial = f"socket,id=serial0,path={files.serial_socket},server=on,wait=off,logfile={files.serial_log}"
    argv = [
        "qemu-system-x86_64",
        "-name", files.workdir.name,
        "-accel", "tcg",
        "-machine", "pc",
        "-cpu", cpu,
        "-smp", str(cpus),
        "-m", str(memory_mb),
        "-nodefaults",
        "-no-user-config",
        "-display", "none",
        "-vga", "std",
        "-kernel", str(kernel),
        "-initrd", str(initrd),
        "-append", append,
        "-chardev", serial,
        "-serial", "chardev:serial0",
        "-qmp", f"unix:{files.qmp},server=on,wait=off",
        "-vnc", f"unix:{files.vnc}",
    ]  # fmt: skip
    if no_reboot:
        argv.append("-no-reboot")
    argv.extend(extra)
    return argv


def _unwrapped(text: str) -> str:
    """``text`` without line breaks: the shell's echo of a long line breaks it where the
    terminal would wrap (busybox ash writes CR CR LF at column 80)."""
    return text.replace("\r", "").replace("\n", "")


@dataclass
class QemuGuest:
    """A running QEMU process started by a test, with helpers to wait on what it prints."""

    files: GuestFiles
    argv: list[str]
    process: subprocess.Popen[bytes]
    _qmp: QMPClient | None = field(default=None, repr=False)

    @classmethod
    def start(cls, files: GuestFiles, argv: list[str]) -> QemuGuest:
        """Spawn ``argv`` (output to ``qemu.log``) in its own process group."""
        files.workdir.mkdir(parents=True, exist_ok=True)
        with files.qemu_log.open("wb") as log:
            process = subprocess.Popen(
                argv, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        return cls(files, argv, process)

    @property
    def qmp(self) -> QMPClient:
        """A connected QMP client (connected on first use; events accumulate on it)."""
        if self._qmp is None:
            self._qmp = QMPClient(self.files.qmp, timeout=30).connect()
        return self._qmp

    def serial_text(self) -> str:
        """Everything the guest printed on its serial port so far."""
        try:
            return self.files.serial_log.read_bytes().decode("utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def wait_for_serial(self, pattern: str, timeout: float = 120.0, start: int = 0) -> re.Match[str]:
        """Wait until the regular expression ``pattern`` matches the serial output from offset
        ``start``; fail early, with the log tail, if QEMU exits first."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        while True:
            text = self.serial_text()
            match = regex.search(text, start)
            if match:
                return match
            if self.process.poll() is not None:
                raise AssertionError(
                    f"QEMU exited ({self.process.returncode}) before {pattern!r} appeared on the serial "
                    f"port.\nqemu.log: {self.qemu_output()[-2000:]}\nserial tail: {text[-2000:]}"
                )
            if time.monotonic() > deadline:
                raise AssertionError(f"{pattern!r} not on the serial port after {timeout:g}s: {text[-2000:]}")
            time.sleep(0.1)

    def send_serial(self, text: str, echo_timeout: float = 10.0) -> None:
        """Type ``text`` on the guest's serial port (its shell reads it).

        QEMU drops what the guest's UART has not taken yet when the connection closes, and a
        guest slowed down by emulation takes a long line slowly: the connection stays open until
        the shell has echoed the end of the text (or ``echo_timeout`` passed, for input nothing
        echoes)."""
        start = len(self.serial_text())
        tail = _unwrapped(text)[-12:]
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(os.fspath(self.files.serial_socket))
            sock.sendall(text.encode())
            time.sleep(0.2)
            deadline = time.monotonic() + echo_timeout
            while tail and tail not in _unwrapped(self.serial_text()[start:]) and time.monotonic() < deadline:
                time.sleep(0.1)

    def type_until(self, text: str, pattern: str, timeout: float = 120.0, every: float = 20.0) -> re.Match[str]:
        """Type ``text`` (a command line, so it must be safe to run twice) until ``pattern``
        appears after it on the serial port: a shell that was still starting, or busy answering
        its own terminal query, swallows what is typed at it."""
        deadline = time.monotonic() + timeout
        while True:
            start = len(self.serial_text())
            self.send_serial(text)
            try:
                return self.wait_for_serial(pattern, timeout=min(every, max(1.0, deadline - time.monotonic())),
                                            start=start)
            except AssertionError:
                if self.process.poll() is not None or time.monotonic() >= deadline:
                    raise

    def wait_exit(self, timeout: float) -> int:
        """Wait for QEMU to exit; return its exit status (raises ``TimeoutExpired``)."""
        return self.process.wait(timeout=timeout)

    def qemu_output(self) -> str:
        """QEMU's own stdout/stderr."""
        try:
            return self.files.qemu_log.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self, timeout: float = 10.0) -> None:
        """End the guest: QMP ``quit``, then SIGKILL to its process group if it lingers."""
        if self.process.poll() is None:
            try:
                self.qmp.execute("quit", timeout=timeout)
            except QMPError:
                pass  # the connection closes as QEMU quits, or QMP is already gone
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=timeout)
        if self._qmp is not None:
            self._qmp.close()
            self._qmp = None

    def __enter__(self) -> QemuGuest:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
