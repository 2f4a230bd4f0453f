"""Whether rsync runs on the host, and what the configured targets are.

The API process runs no host commands (issue 3): the worker's ``backup.probe`` (periodic job
and task kind) runs ``rsync --version`` and stores the fact ``backup.status``; the status route
reads it and adds the targets from the settings.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel

from bhype_backup.settings import BackupSettings, TargetKind
from bhype_core.plugin_api import CommandError, ProbeState, read_probe

# rsync(1) --version, first line: "rsync  version 3.2.7  protocol version 31" (some builds print "v3.2.7").
_VERSION_LINE = re.compile(r"^rsync\s+version\s+v?(?P<version>\S+)\s+protocol version\s+(?P<protocol>\d+)")

FACT_KEY = "backup.status"
PROBE_KIND = "backup.probe"
REFRESH_ROUTE = "POST /api/v1/backup/status/refresh"


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


class BackupProbe(BaseModel):
    """What the worker found on the host (the fact ``backup.status``)."""

    rsync: RsyncStatus


class BackupStatus(ProbeState):
    """``GET /api/v1/backup/status``: rsync as the worker last probed it (``None`` and a
    ``message`` while ``probed`` is false) and the configured targets."""

    rsync: RsyncStatus | None = None
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


def probe(context: Any) -> dict[str, Any]:
    """Task kind and periodic job ``backup.probe`` (worker only): run :func:`rsync_status` with
    the worker's runner and store it as the fact ``backup.status``; returns what was stored."""
    found = BackupProbe(rsync=rsync_status(context.runner, context.settings.section("backup")))
    value = found.model_dump(mode="json")
    context.runtime.facts.put(FACT_KEY, value)
    rsync = found.rsync
    context.log(f"probed: rsync {rsync.version} (protocol {rsync.protocol})" if rsync.found
                else f"probed: rsync not usable: {rsync.error}")
    return value


def backup_status(runtime: Any) -> BackupStatus:
    """Everything ``GET /api/v1/backup/status`` reports: the stored probe (no host command) and
    the targets from the settings."""
    settings: BackupSettings = runtime.settings.section("backup")
    targets = [
        TargetSummary(name=t.name, kind=t.kind, destination=t.destination, keep=t.keep)
        for t in settings.targets
    ]
    found, state = read_probe(runtime.facts, FACT_KEY, BackupProbe, what="the host's rsync", refresh=REFRESH_ROUTE)
    return BackupStatus(
        **state.model_dump(), rsync=found.rsync if found else None, targets_count=len(targets), targets=targets
    )
