"""VNC port allocation: the first free loopback port from 5900, claimed per VM under a lock.

vm-bhyve scans LISTEN sockets from 5900 upward over 200 ports (reference 9.3); bHype does the
same with a bind test on 127.0.0.1. A claim file per port (``<run_dir>/vnc/<port>``) keeps a
port reserved for a running VM while its hypervisor is between two processes (a QEMU restart
after a guest reboot), and an exclusive lock around allocate-and-launch keeps two starts from
picking the same port before either hypervisor listens. The lock is host-wide (in the
temporary directory), since ports are: two bHype data directories on one host (tests, a
developer's second instance) must not race for the same port either.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from bhype_core.errors import BhypeError

VNC_BASE = 5900
VNC_COUNT = 200
HOST = "127.0.0.1"
PORT_FILE = "vnc.port"

# ``is_active(vm_dir, instance)``: does that VM still run (then its claim holds)?
ActiveCheck = Callable[[Path, str], bool]


class NoFreePort(BhypeError):
    """Every port of the VNC range is in use."""

    code = "no_free_port"
    http_status = 409


def port_free(port: int, host: str = HOST) -> bool:
    """True when nothing listens on ``host:port`` (a bind test; SO_REUSEADDR as QEMU and bhyve
    set it, so connections lingering in TIME_WAIT do not count as taken)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as exc:
            if exc.errno in (errno.EADDRINUSE, errno.EACCES):
                return False
            raise
    return True


class PortAllocator:
    """Allocates VNC ports from ``base`` to ``base + count - 1`` for VMs, recording each VM's
    port in ``<vm_dir>/vnc.port`` and a claim in ``<run_dir>/vnc/<port>``."""

    def __init__(
        self,
        run_dir: Path,
        base: int = VNC_BASE,
        count: int = VNC_COUNT,
        host: str = HOST,
        lock_path: Path | None = None,
    ) -> None:
        self.claims = Path(run_dir) / "vnc"
        self.lock_path = lock_path or Path(tempfile.gettempdir()) / "bhype-vnc-ports.lock"
        self.base = base
        self.count = count
        self.host = host

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the allocation lock (across allocate and hypervisor launch)."""
        self.claims.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)  # closing releases the flock

    def recorded(self, vm_dir: Path) -> int | None:
        """The port this VM used last, if any."""
        try:
            text = (Path(vm_dir) / PORT_FILE).read_text().strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def _claim_owner(self, port: int) -> tuple[Path, str] | None:
        try:
            data = json.loads((self.claims / str(port)).read_text())
            return Path(data["vm_dir"]), str(data["instance"])
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _taken_by_other(self, port: int, vm_dir: Path, is_active: ActiveCheck) -> bool:
        owner = self._claim_owner(port)
        return owner is not None and owner[0] != Path(vm_dir) and is_active(*owner)

    def candidates(self, vm_dir: Path) -> Iterator[int]:
        """The VM's previous port first (stable for bookmarked viewers), then the range."""
        previous = self.recorded(vm_dir)
        if previous is not None and self.base <= previous < self.base + self.count:
            yield previous
        yield from (p for p in range(self.base, self.base + self.count) if p != previous)

    def peek(self, vm_dir: Path, is_active: ActiveCheck) -> int | None:
        """The port :meth:`allocate` would choose now, without claiming it."""
        for port in self.candidates(vm_dir):
            if not self._taken_by_other(port, vm_dir, is_active) and port_free(port, self.host):
                return port
        return None

    def allocate(self, vm_dir: Path, instance: str, is_active: ActiveCheck) -> int:
        """Claim a free port for ``vm_dir`` and record it there. Call inside :meth:`locked`.

        :raises NoFreePort: every port in the range is taken.
        """
        port = self.peek(vm_dir, is_active)
        if port is None:
            raise NoFreePort(f"no free VNC port on {self.host} between {self.base} and {self.base + self.count - 1}")
        self.release(vm_dir)
        (self.claims / str(port)).write_text(json.dumps({"vm_dir": str(vm_dir), "instance": instance}))
        (Path(vm_dir) / PORT_FILE).write_text(f"{port}\n")
        return port

    def release(self, vm_dir: Path) -> None:
        """Drop the claims ``vm_dir`` holds (its recorded port file stays as a preference)."""
        if not self.claims.is_dir():
            return
        for claim in self.claims.iterdir():
            if claim.name.isdigit():
                owner = self._claim_owner(int(claim.name))
                if owner is not None and owner[0] == Path(vm_dir):
                    claim.unlink(missing_ok=True)
