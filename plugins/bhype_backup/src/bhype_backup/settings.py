"""The ``[backup]`` settings section and its rsync targets."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, field_validator

from bhype_core.plugin_api import Section

TargetKind = Literal["local", "ssh", "daemon"]

_TARGET_NAME = re.compile(r"[a-z][a-z0-9_-]{0,62}")


def destination_kind(destination: str) -> TargetKind:
    """Classify an rsync destination the way rsync(1) "USAGE" does: ``rsync://[USER@]HOST[:PORT]/DEST``
    or ``[USER@]HOST::DEST`` reach an rsync daemon, ``[USER@]HOST:DEST`` goes over a remote shell
    (SSH), anything else is a local path. Raises ValueError for destinations bHype refuses."""
    if not destination:
        raise ValueError("must not be empty")
    if destination.startswith("rsync://"):
        if len(destination) <= len("rsync://") or destination[len("rsync://")] == "/":
            raise ValueError("rsync:// URL needs a host: rsync://[USER@]HOST[:PORT]/MODULE[/PATH]")
        return "daemon"
    head = destination.split("/", 1)[0]
    if "::" in head:
        return "daemon"
    if ":" in head:
        host, _, path = destination.partition(":")
        if not host.rpartition("@")[2]:
            raise ValueError("remote destination needs a host: [USER@]HOST:PATH")
        if not path:
            raise ValueError("remote destination needs a path after ':'")
        return "ssh"
    if not destination.startswith("/"):
        # A relative local path would depend on the worker's working directory.
        raise ValueError("local destination must be an absolute path")
    return "local"


class BackupTarget(Section):
    """One place backups go (``[[backup.targets]]``)."""

    name: str = Field(..., description="short name used in schedules and the API")
    destination: str = Field(..., description="/path, [user@]host:path, host::module/path or rsync://host/module/path")
    keep: int = Field(7, ge=1, le=1000, description="backups kept per VM on this target")

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _TARGET_NAME.fullmatch(value):
            raise ValueError("must start with a lower-case letter and contain only a-z, 0-9, '_' and '-'")
        return value

    @field_validator("destination")
    @classmethod
    def _valid_destination(cls, value: str) -> str:
        destination_kind(value)
        return value

    @property
    def kind(self) -> TargetKind:
        """How rsync reaches this target."""
        return destination_kind(self.destination)


class BackupSettings(Section):
    """``[backup]``: where backups go and how rsync is run."""

    rsync_command: str = Field("rsync", min_length=1, description="rsync executable (name or absolute path)")
    command_timeout: float = Field(10.0, gt=0, le=300, description="seconds allowed for the status probe")
    targets: list[BackupTarget] = Field(default_factory=list)
    bwlimit: int = Field(0, ge=0, le=10**9, description="rsync --bwlimit for backups, KiB/s (0: no limit)")

    @field_validator("targets")
    @classmethod
    def _unique_names(cls, targets: list[BackupTarget]) -> list[BackupTarget]:
        seen: set[str] = set()
        for target in targets:
            if target.name in seen:
                raise ValueError(f"target name {target.name!r} is used twice")
            seen.add(target.name)
        return targets
