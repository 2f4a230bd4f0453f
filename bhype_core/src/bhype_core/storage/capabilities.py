"""What a storage backend declares about itself (issue 12): consistent points of a VM's disks
(snapshot + release), a way to export a point (a send stream or a file list for rsync), and
space/statistics, so backup, moves and monitoring ask the datastore instead of its type.

A backend without a capability raises :class:`~bhype_core.errors.NotSupported` ("snapshot is
not supported by storage backend directory"); callers check with
:meth:`~bhype_core.storage.base.StorageBackend.require` when they validate a request (plan
time), before anything is queued.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any


class StorageCapability(StrEnum):
    """Something a datastore can do beyond creating, growing and copying disks."""

    SNAPSHOT = "snapshot"  # a consistent point of all a VM's disks at one instant, held until released
    EXPORT_STREAM = "export-stream"  # a point as one byte stream (zfs send), piped by the runner
    EXPORT_FILES = "export-files"  # a point (or a stopped VM) as a file list for rsync
    STATS = "stats"  # space of the datastore and per disk
    ADOPT = "adopt"  # take an existing disk (file, zvol) as a VM's disk in place, without copying


@dataclass(frozen=True)
class ConsistentPoint:
    """A consistent point of one VM's disks, protected from deletion until :meth:`release`.

    :param vm_name: the VM. :param name: the point's name (the ZFS snapshot name).
    :param tag: who holds it (a ``zfs hold`` tag such as ``bhype-backup``).
    :param locations: per disk, where the point's data is (``tank/bhype/vms/web1/disk0@n``).
    """

    backend: str
    vm_name: str
    name: str
    tag: str
    locations: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (a task's result, a resumable step's state)."""
        return asdict(self)


@dataclass(frozen=True)
class ExportStream:
    """A point as one stream: run ``producer`` on the datastore's host with the runner's
    ``pipe`` into a consumer (``zfs receive`` elsewhere, a file writer); ``format`` names what
    the bytes are (``zfs-send``), ``restore_hint`` the consumer that reads them."""

    producer: list[str]
    format: str
    restore_hint: str = ""


@dataclass(frozen=True)
class ExportFiles:
    """A point (or a stopped VM's directory) as files: ``root`` plus ``files`` relative to it,
    ready for ``rsync --files-from``; ``consistent`` is false for live files (the VM must be
    stopped while they are read)."""

    root: Path
    files: list[str]
    consistent: bool


@dataclass(frozen=True)
class SpaceStats:
    """Space of a datastore (bytes): ``size`` = ``used`` + ``free`` as the backend counts it."""

    size: int
    used: int
    free: int

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class VolumeStats:
    """One VM disk: ``size`` the guest sees, ``used`` what it occupies (sparse: less)."""

    name: str
    size: int
    used: int

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)
