"""The supervisor's files in a VM directory (state, pid files, stop request) and process checks.

The supervisor writes ``state.json`` (atomically) and its pid files; drivers in any process
read them and check the pids against the process table, so a VM's state survives restarts of
the API and the worker. Nothing here runs a hypervisor.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bhype_core.errors import CommandError

TAIL_LINES = 20
MAX_LOG_BYTES = 1024 * 1024  # a log past this is rotated (one ``.1`` generation) at supervisor start
SUPERVISOR_MODULE = "bhype_core.drivers.supervisor"


@dataclass(frozen=True)
class VMFiles:
    """Where one VM's supervisor keeps its files (all inside ``vm_dir``)."""

    vm_dir: Path

    @property
    def config(self) -> Path:
        return self.vm_dir / "supervisor.json"

    @property
    def state(self) -> Path:
        return self.vm_dir / "state.json"

    @property
    def supervisor_pid(self) -> Path:
        return self.vm_dir / "supervisor.pid"

    @property
    def hypervisor_pid(self) -> Path:
        return self.vm_dir / "hypervisor.pid"

    @property
    def stop_request(self) -> Path:
        return self.vm_dir / "stop.request"

    @property
    def supervisor_log(self) -> Path:
        return self.vm_dir / "supervisor.log"

    @property
    def hypervisor_log(self) -> Path:
        return self.vm_dir / "hypervisor.log"

    def crash_ack(self, crash_id: str) -> Path:
        return self.vm_dir / f"crash-{crash_id}.ack"


def now_iso() -> str:
    """The current time, ISO 8601 in UTC (what state files record)."""
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def write_json(path: Path, data: dict[str, Any], mode: int = 0o644) -> None:
    """Write ``data`` so readers see the old or the new file, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    with os.fdopen(fd, "w") as handle:
        json.dump(data, handle, indent=1, sort_keys=True)
        handle.write("\n")
    os.replace(tmp, path)


def read_json(path: Path) -> dict[str, Any] | None:
    """The JSON object in ``path``, or ``None`` when it is missing or unreadable."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def read_pid(path: Path) -> int | None:
    """The pid in a pid file, or ``None``."""
    try:
        text = path.read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def write_pid(path: Path, pid: int) -> None:
    """Write a pid file (one decimal line)."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(f"{pid}\n")
    os.replace(tmp, path)


def tail_lines(path: Path, offset: int = 0, count: int = TAIL_LINES) -> list[str]:
    """The last ``count`` non-empty lines of ``path`` from byte ``offset`` on (decoded leniently)."""
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, os.SEEK_END)
            start = max(offset, size - 64 * 1024)  # enough for any tail worth showing
            handle.seek(start)
            data = handle.read()
    except OSError:
        return []
    lines = [line.rstrip() for line in data.decode("utf-8", errors="replace").splitlines()]
    return [line for line in lines if line.strip()][-count:]


def rotate(path: Path, limit: int = MAX_LOG_BYTES) -> None:
    """Keep a log from growing without bound: past ``limit`` bytes it becomes ``<name>.1``."""
    try:
        if path.stat().st_size > limit:
            os.replace(path, path.with_name(path.name + ".1"))
    except FileNotFoundError:
        pass


def boot_id(runner: Any = None) -> str:
    """Something that changes when the host reboots: Linux ``boot_id``; on FreeBSD
    ``sysctl -n kern.boottime`` (reference 8.1), run through ``runner``."""
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        pass
    if runner is None:
        return ""
    try:
        result = runner.run(["sysctl", "-n", "kern.boottime"], timeout=10, check=False)
    except CommandError:
        return ""
    return result.stdout.strip() if result.returncode == 0 else ""


class ProcessTable:
    """Answers "is pid N still the process we started?" on Linux (``/proc``) and FreeBSD
    (``ps``, through the runner; procfs is not mounted there by default).

    A zombie counts as gone: a daemon's exit is visible before its parent reaps it.
    """

    def __init__(self, runner: Any) -> None:
        self.runner = runner

    def alive(self, pid: int | None, markers: Sequence[str] = ()) -> bool:
        """True when ``pid`` runs, is no zombie, and every marker is one of the words of its
        command line (guards against pid reuse: ``bhype-web1`` must not match ``bhype-web10``)."""
        if not pid or pid <= 0:
            return False
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            pass  # exists, owned by someone else: still check what it is
        proc = Path(f"/proc/{pid}")
        if (proc / "stat").exists():
            return self._alive_procfs(proc, markers)
        return self._alive_ps(pid, markers)

    @staticmethod
    def _alive_procfs(proc: Path, markers: Sequence[str]) -> bool:
        try:
            stat = (proc / "stat").read_text()
            words = (proc / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            return False
        # Field 3 of /proc/PID/stat, after the parenthesised command name (proc(5)).
        state = stat.rsplit(")", 1)[-1].split()[0] if ")" in stat else "?"
        if state in ("Z", "X"):
            return False
        return all(marker in words for marker in markers)

    def _alive_ps(self, pid: int, markers: Sequence[str]) -> bool:
        # ps(1): -o stat= -o command= prints the state letters and the full command line
        # (bhyve's is its setproctitle "bhyve: NAME", reference 1.8).
        try:
            result = self.runner.run(["ps", "-o", "stat=", "-o", "command=", "-p", str(pid)], timeout=10, check=False)
        except CommandError:
            return False
        line = result.stdout.strip()
        if result.returncode != 0 or not line:
            return False
        state, _, command = line.partition(" ")
        if state.startswith("Z"):
            return False
        words = command.split()
        return all(marker in words for marker in markers)

    def wait_gone(self, pid: int, markers: Sequence[str], timeout: float, interval: float = 0.1) -> bool:
        """Wait until ``pid`` is no longer alive; True when it went within ``timeout``."""
        deadline = time.monotonic() + timeout
        while self.alive(pid, markers):
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval)
        return True


def supervisor_markers(vm_dir: Path) -> tuple[str, ...]:
    """What a live supervisor's command line contains (module name and its VM directory)."""
    return (SUPERVISOR_MODULE, str(vm_dir))
