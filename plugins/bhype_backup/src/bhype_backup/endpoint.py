"""One target as the worker reaches it: rsync destinations, options and a few file operations.

Every command goes through the worker's runner as an argv list. A local target is a directory
on this host; an SSH or ZFS target is reached with ``ssh -i KEY`` and the host key pinned at
``target add`` (``StrictHostKeyChecking=yes``); an rsync daemon only speaks rsync, so its file
operations are rsync runs too (an empty tree to make directories, ``--delete`` with a filter
to remove one, ``--list-only`` to look). The daemon password is given with ``--password-file``.
"""

from __future__ import annotations

import shlex
import tempfile
from pathlib import Path
from typing import Any

from bhype_backup.destinations import Destination, parse_destination
from bhype_backup.models import BackupTarget
from bhype_core.plugin_api import (
    NotFound,
    SshTransport,
    daemon_url,
    rsync_argv,
    run_rsync,
    ssh_destination,
)

CONNECT_TIMEOUT = 15
IO_TIMEOUT = 300


def secrets_dir(runtime: Any, target_name: str) -> Path:
    """``<data_dir>/backup/secrets/<target>``: 0700, files 0600 (worker only)."""
    return Path(runtime.settings.core.data_dir) / "backup" / "secrets" / target_name


class Endpoint:
    """A target, resolved for the worker (never built in the API process)."""

    def __init__(self, runtime: Any, target: BackupTarget, runner: Any = None) -> None:
        self.runtime = runtime
        self.target = target
        self.dest: Destination = parse_destination(target.destination)
        # A target is reached from this machine: the secrets (password file, SSH key, pinned
        # known_hosts) and the staged view of a point are here, even when [runner] drives the
        # datastore's host over SSH (runtime.local_runner is runtime.runner when it is local).
        self.runner = runner if runner is not None else runtime.local_runner
        self.directory = secrets_dir(runtime, target.name)

    # -- secrets and transport ------------------------------------------------------------
    @property
    def password_file(self) -> Path:
        return self.directory / "password"

    @property
    def key_file(self) -> Path:
        return self.directory / "id_key"

    @property
    def known_hosts(self) -> Path:
        return self.directory / "known_hosts"

    def ssh(self) -> SshTransport | None:
        """The SSH transport of an SSH/ZFS target (pinned host key), else ``None``."""
        if self.dest.kind not in ("ssh", "zfs"):
            return None
        return SshTransport(key_file=str(self.key_file), known_hosts=str(self.known_hosts),
                            port=self.dest.port or 22, connect_timeout=CONNECT_TIMEOUT)

    def ssh_argv(self, argv: list[str]) -> list[str]:
        """``ssh … USER@HOST -- 'argv quoted once'``: run ``argv`` on an SSH/ZFS target."""
        transport = self.ssh()
        assert transport is not None
        who = f"{self.dest.user}@{self.dest.host}" if self.dest.user else self.dest.host
        return [*transport.argv(), who, "--", shlex.join(argv)]

    def rsync_options(self) -> dict[str, Any]:
        """Keyword arguments for :func:`rsync_argv` reaching this target."""
        options: dict[str, Any] = {"windows": self.target.windows, "io_timeout": IO_TIMEOUT,
                                   "connect_timeout": CONNECT_TIMEOUT}
        if self.dest.kind == "daemon" and self.target.has_secret:
            options["password_file"] = str(self.password_file)
        if self.dest.kind == "ssh":
            options["ssh"] = self.ssh()
        return options

    # -- paths -----------------------------------------------------------------------------
    def url(self, relative: str = "", directory: bool = True) -> str:
        """The rsync destination (or source) for ``relative`` below the target root."""
        relative = relative.strip("/")
        tail = "/" if directory else ""
        if self.dest.kind == "local":
            return str(Path(self.dest.path) / relative).rstrip("/") + tail
        if self.dest.kind == "daemon":
            module, _, base = self.dest.path.partition("/")
            path = "/".join(p for p in (base, relative) if p)
            return daemon_url(self.dest.host, module, path, user=self.dest.user, port=self.dest.port) + tail
        if self.dest.kind == "ssh":
            return ssh_destination(self.dest.user, self.dest.host, self.path(relative)) + tail
        raise NotFound(f"target {self.target.name} is a ZFS target: it holds datasets, not files")

    def path(self, relative: str = "") -> str:
        """The absolute path on the target's host (local and SSH targets)."""
        return str(Path(self.dest.path) / relative.strip("/")) if relative.strip("/") else self.dest.path

    # -- file operations ----------------------------------------------------------------------
    def run_there(self, argv: list[str], *, check: bool = True, timeout: float = 120) -> Any:
        """Run ``argv`` where the target's files are (here, or over SSH)."""
        if self.dest.kind == "local":
            return self.runner.run(argv, check=check, timeout=timeout)
        return self.runner.run(self.ssh_argv(argv), check=check, timeout=timeout)

    def rsync(self, sources: list[str], destination: str, **options: Any) -> Any:
        """One small rsync run with this target's options (no progress)."""
        merged = {**self.rsync_options(), "progress": False, **options}
        return run_rsync(self.runner, rsync_argv(sources, destination, **merged), timeout=600)

    def makedirs(self, relative: str) -> None:
        """Create ``relative`` (and its parents) below the target root."""
        if self.dest.kind in ("local", "ssh"):
            self.run_there(["mkdir", "-p", "--", self.path(relative)])
            return
        with tempfile.TemporaryDirectory(prefix="bhype-bk-") as empty:
            (Path(empty) / relative.strip("/")).mkdir(parents=True)
            self.rsync([empty + "/"], self.url(""), inplace=False, delta=False)

    def remove_tree(self, relative: str) -> None:
        """Delete ``relative`` below the target root (absent is fine)."""
        relative = relative.strip("/")
        if not relative or ".." in relative.split("/"):
            raise ValueError(f"refusing to remove {relative!r} on target {self.target.name}")
        if self.dest.kind in ("local", "ssh"):
            self.run_there(["rm", "-rf", "--", self.path(relative)])
            return
        parent, _, leaf = relative.rpartition("/")
        with tempfile.TemporaryDirectory(prefix="bhype-bk-") as empty:
            # rsync(1) --delete with a filter: only the included tree is deleted on the receiver.
            extra = ["--delete", f"--include=/{leaf}/***", "--exclude=*"]
            self.rsync([empty + "/"], self.url(parent), inplace=False, delta=False, extra=extra)

    def read_file(self, relative: str, limit: int = 64 * 2**20) -> bytes:
        """The content of one small file on the target (a manifest)."""
        with tempfile.TemporaryDirectory(prefix="bhype-bk-") as scratch:
            if self.dest.kind == "local":
                local = Path(self.path(relative))
                if not local.is_file() or local.is_symlink():
                    raise NotFound(f"{relative} does not exist on target {self.target.name}")
                data = local.read_bytes()
            else:
                try:
                    self.rsync([self.url(relative, directory=False)], scratch + "/", inplace=False, delta=False)
                except Exception as exc:  # noqa: BLE001 (any failure: the file cannot be read)
                    raise NotFound(f"{relative} cannot be read from target {self.target.name}: {exc}") from exc
                data = (Path(scratch) / Path(relative).name).read_bytes()
        if len(data) > limit:
            raise NotFound(f"{relative} on target {self.target.name} is larger than {limit} bytes")
        return data

    def free_bytes(self) -> int | None:
        """Free space where points go (``df -Pk``, POSIX), or ``None`` (an rsync daemon cannot say)."""
        if self.dest.kind not in ("local", "ssh"):
            return None
        result = self.run_there(["df", "-Pk", "--", self.path()], check=False)
        lines = result.stdout.strip().splitlines()
        if result.returncode != 0 or len(lines) < 2:
            return None
        fields = lines[-1].split()
        return int(fields[3]) * 1024 if len(fields) >= 4 and fields[3].isdigit() else None
