"""Whether rsync runs on the host, and what the configured targets are."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

from bhype_backup.settings import BackupSettings, TargetKind
from bhype_core.errors import CommandError

# rsync(1) --version, first line: "rsync  version 3.2.7  protocol version 31" (some builds print "v3.2.7").
_VERSION_LINE = re.compile(r"^rsync\s+version\s+v?(?P<version>\S+)\s+protocol version\s+(?P<protocol>\d+)")


class RsyncStatus(BaseModel):
    """Whether rsync runs on the host, and which version and protocol it speaks."""

    found: bool
    version: str | None = None
    protocol: int | None = None
    error: str | None = None


class TargetSummary(BaseModel):
    """A configured target as the status shows it."""

    name: str
    kind: TargetKind
    destination: str
    keep: int


class BackupStatus(BaseModel):
    """``GET /api/v1/backup/status``."""

    rsync: RsyncStatus
    targets_count: int
    targets: list[TargetSummary]


def parse_rsync_version(text: str) -> tuple[str, int]:
    """Version and protocol number from ``rsync --version`` output; ValueError if unrecognised."""
    first = text.lstrip().splitlines()[0] if text.strip() else ""
    match = _VERSION_LINE.match(first)
    if not match:
        raise ValueError(f"unrecognised rsync --version output: {first!r}")
    return match["version"], int(match["protocol"])


def _text(value: Any) -> str:
    value = value or ""
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def rsync_status(runner: Any, settings: BackupSettings) -> RsyncStatus:
    """Run ``rsync --version`` on the host; failures are reported, not raised."""
    try:
        argv = [settings.rsync_command, "--version"]
        result = runner.run(argv, timeout=settings.command_timeout, check=False)
    except CommandError as exc:  # not installed, not executable, or timed out
        return RsyncStatus(found=False, error=exc.reason or exc.message)
    if result.returncode != 0:
        stderr = _text(result.stderr).strip().splitlines()
        error = stderr[-1] if stderr else f"exited with status {result.returncode}"
        return RsyncStatus(found=False, error=error)
    try:
        version, protocol = parse_rsync_version(_text(result.stdout))
    except ValueError as exc:
        return RsyncStatus(found=False, error=str(exc))
    return RsyncStatus(found=True, version=version, protocol=protocol)


def backup_status(runner: Any, settings: BackupSettings) -> BackupStatus:
    """Everything ``GET /api/v1/backup/status`` reports."""
    targets = [
        TargetSummary(name=t.name, kind=t.kind, destination=t.destination, keep=t.keep)
        for t in settings.targets
    ]
    return BackupStatus(rsync=rsync_status(runner, settings), targets_count=len(targets), targets=targets)
