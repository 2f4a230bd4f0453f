"""``bhype vm console``: attach this terminal to a VM's serial console, on the VM host.

The QEMU driver serves the console on a unix socket, bhyve on the B side of an nmdm(4) pair
(reference 9.1: open it ``O_RDWR | O_NOCTTY | O_NONBLOCK`` in raw mode). Bytes are relayed
both ways until the escape sequence (``~.`` at the start of a line, as cu(1) uses) or until
the console closes. Needs read access to the VM's directory: run it as root on the host.
"""

from __future__ import annotations

import os
import select
import socket
import sys
import termios
import tty
from collections.abc import Callable
from typing import Any

from bhype_core.errors import Conflict, NotFound
from bhype_core.spec import validate_spec
from bhype_core.vm.services import active_driver, open_datastore


class EscapeWatcher:
    """Spots ``escape`` typed at the start of a line (after CR/LF or at the very start)."""

    def __init__(self, escape: str) -> None:
        self.escape = escape.encode()
        self.line_start = True
        self.matched = 0

    def feed(self, data: bytes) -> tuple[bytes, bool]:
        """Return (bytes to forward, whether to detach). Escape bytes are held back until the
        sequence is complete or broken (then forwarded)."""
        out = bytearray()
        for byte in data:
            char = bytes([byte])
            if self.escape and (self.line_start or self.matched) and char == self.escape[self.matched:self.matched + 1]:
                self.matched += 1
                if self.matched == len(self.escape):
                    return bytes(out), True
                continue
            if self.matched:
                out += self.escape[: self.matched]
                self.matched = 0
            out += char
            self.line_start = char in (b"\r", b"\n")
        return bytes(out), False


def relay(console_read: Callable[[], bytes | None], console_write: Callable[[bytes], Any], console_fd: int,
          stdin_fd: int, stdout_fd: int, escape: str) -> str:
    """Copy bytes between the console and this terminal until detach or EOF; returns why.

    ``console_read`` returns ``None`` when nothing is there after all (a non-blocking tty),
    ``b""`` when the console closed.
    """
    watcher = EscapeWatcher(escape)
    while True:
        ready, _, _ = select.select([console_fd, stdin_fd], [], [])
        if console_fd in ready:
            data = console_read()
            if data == b"":
                return "the console closed"
            if data:
                os.write(stdout_fd, data)
        if stdin_fd in ready:
            data = os.read(stdin_fd, 4096)
            if not data:
                return "end of input"
            forward, detach = watcher.feed(data)
            if forward:
                console_write(forward)
            if detach:
                return "detached"


def attach_console(runtime: Any, vm: dict[str, Any], escape: str = "~.") -> int:
    """Attach to ``vm``'s (the API's VM detail) serial console; returns the exit status.

    :raises Conflict: the VM is not running. :raises NotFound: it has no serial console.
    """
    store = open_datastore(runtime, vm["datastore"])
    status = active_driver(runtime).status(validate_spec(vm["spec"]), store.vm_dir(vm["name"]))
    if not status.active:
        raise Conflict(f"VM {vm['name']} is {status.state.value}; start it first")
    serial = status.consoles.get("serial") or {}
    stdin_fd, stdout_fd = sys.stdin.fileno(), sys.stdout.fileno()
    saved = termios.tcgetattr(stdin_fd) if os.isatty(stdin_fd) else None
    print(f"connected to {vm['name']}'s serial console; type {escape} at the start of a line to detach",
          file=sys.stderr)
    try:
        if saved is not None:
            tty.setraw(stdin_fd)
        if serial.get("unix"):
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.connect(serial["unix"])
                why = relay(lambda: sock.recv(4096), sock.sendall, sock.fileno(), stdin_fd, stdout_fd, escape)
        elif serial.get("device"):
            fd = os.open(serial["device"], os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
            try:
                tty.setraw(fd)
                why = relay(lambda: _read(fd), lambda data: os.write(fd, data), fd, stdin_fd, stdout_fd, escape)
            finally:
                os.close(fd)
        else:
            raise NotFound(f"VM {vm['name']} has no serial console")
    finally:
        if saved is not None:
            termios.tcsetattr(stdin_fd, termios.TCSADRAIN, saved)
    print(f"\r\n[{why}]", file=sys.stderr)
    return 0


def _read(fd: int) -> bytes | None:
    try:
        return os.read(fd, 4096)
    except BlockingIOError:
        return None
