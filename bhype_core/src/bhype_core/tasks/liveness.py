"""Is a worker still alive? Each worker holds an exclusive ``flock(2)`` on its own lease file.

The kernel drops the lock when the process dies, however it dies (``kill -9`` included), and
a new process can never inherit it by pid reuse, which is why this beats ``kill(pid, 0)``.
flock(2) exists on FreeBSD and Linux alike. Lease files live under ``<core.data_dir>/workers``,
so liveness is known for workers on this host only.
"""

from __future__ import annotations

import errno
import fcntl
import logging
import os
import socket
import uuid
from pathlib import Path

from bhype_core.errors import ConfigError
from bhype_core.tasks.store import WorkerIdentity

log = logging.getLogger("bhype.tasks")

SUFFIX = ".lease"


def lease_dir(data_dir: Path) -> Path:
    """Where the lease files of this host's workers live."""
    return Path(data_dir) / "workers"


class WorkerLease:
    """This process's identity as a worker, proven alive by a held lock on ``<id>.lease``."""

    def __init__(self, directory: Path, host: str | None = None) -> None:
        self.directory = Path(directory)
        # host: the group host name (``[host] name``, issue 22), which may differ from the hostname.
        self.identity = WorkerIdentity(id=uuid.uuid4().hex, host=host or socket.gethostname(), pid=os.getpid())
        self.path = self.directory / f"{self.identity.id}{SUFFIX}"
        self._fd: int | None = None

    def acquire(self) -> WorkerLease:
        """Create the lease file and lock it for the life of this process.

        :raises ConfigError: the directory cannot be created or written.
        """
        if self._fd is not None:
            return self
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            # O_CLOEXEC (Python's default) keeps the lock out of host commands the worker runs.
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise ConfigError(f"core.data_dir: cannot create the worker lease {self.path}: {exc.strerror}") from None
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a fresh uuid: nobody else holds it
        os.write(fd, f"{self.identity.host} {self.identity.pid}\n".encode())
        self._fd = fd
        return self

    @property
    def held(self) -> bool:
        """Whether this process holds its lease."""
        return self._fd is not None

    def release(self) -> None:
        """Give the lease up (the worker stops); the file goes with it."""
        if self._fd is None:
            return
        try:
            self.path.unlink(missing_ok=True)
        finally:
            os.close(self._fd)  # closing drops the flock
            self._fd = None


def is_alive(directory: Path, worker_id: str) -> bool:
    """Whether the worker ``worker_id`` of this host still holds its lease.

    A lease nobody holds belongs to a dead worker: it is removed on the way.
    """
    if not worker_id or "/" in worker_id or worker_id.startswith("."):
        return False
    path = Path(directory) / f"{worker_id}{SUFFIX}"
    try:
        fd = os.open(path, os.O_RDWR)
    except FileNotFoundError:
        return False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN):
                return True
            raise
        path.unlink(missing_ok=True)
        return False
    finally:
        os.close(fd)


def sweep_leases(directory: Path) -> list[str]:
    """Remove the lease files of dead workers; returns their worker ids."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    dead = []
    for path in sorted(directory.glob(f"*{SUFFIX}")):
        worker_id = path.name[: -len(SUFFIX)]
        if not is_alive(directory, worker_id):
            dead.append(worker_id)
    if dead:
        log.info("removed the leases of %d stopped worker(s)", len(dead))
    return dead
