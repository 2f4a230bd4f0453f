"""Dirty-block tracking of a running VM's disks (capability ``DIRTY_TRACKING``, issue 17): what
a warm move uses to copy only what the guest wrote since the previous pass instead of reading
whole disks on both hosts.

A driver that declares the capability returns a :class:`DirtyTracker` from
:meth:`~bhype_core.drivers.base.HypervisorDriver.track_dirty`; the QEMU driver's is
:mod:`bhype_core.drivers.qemu_dirty` (QMP dirty bitmaps read through QEMU's NBD server).
bhyve has no equivalent: callers fall back to comparing whole files (rsync).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from bhype_core.errors import BhypeError

Extent = tuple[int, int]
"""``(offset, length)`` in bytes of a disk range the guest may have written."""


class TrackingLost(BhypeError):
    """The tracker no longer knows what changed (the hypervisor restarted, a bitmap vanished):
    the caller must compare whole disks once more (and may start a new tracker)."""

    code = "tracking_lost"


@dataclass
class FinalChanges:
    """Filled by :meth:`DirtyTracker.stopping` while the caller stops the VM: per disk path
    the extents written since the last :meth:`DirtyTracker.changed`, read after the guest
    powered off and before the hypervisor ended. ``extents`` stays ``None`` when they could not
    be read (a forced power-off, the hypervisor ended on its own): compare whole disks then."""

    extents: dict[str, list[Extent]] | None = None
    detail: str = ""
    notes: list[str] = field(default_factory=list)


class DirtyTracker(ABC):
    """Tracks writes to a running VM's disks from :meth:`start` on (one per move)."""

    @abstractmethod
    def start(self) -> None:
        """Begin recording writes to every disk (from this instant on).

        :raises NotSupported: a disk cannot be tracked (e.g. it runs on a backup overlay).
        """

    @abstractmethod
    def changed(self) -> dict[str, list[Extent]]:
        """Per disk path, the extents written since :meth:`start` or the previous call,
        atomically: a write racing with this call is in this answer or in the next one.

        :raises TrackingLost: the hypervisor no longer tracks (it restarted).
        """

    @abstractmethod
    def stopping(self) -> AbstractContextManager[FinalChanges]:
        """For a ``with`` block in which the caller stops the VM gracefully (``vm.stop``):
        when the guest has powered off, the last extents are read into the yielded
        :class:`FinalChanges` before the hypervisor ends."""

    @abstractmethod
    def close(self) -> None:
        """Stop tracking and release what tracking held (idempotent; fine when the VM ended)."""


def merge_extents(extents: Iterable[Extent]) -> list[Extent]:
    """Sorted extents with overlapping and adjacent ones joined."""
    merged: list[list[int]] = []
    for offset, length in sorted(extents):
        if length <= 0:
            continue
        if merged and offset <= merged[-1][0] + merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], offset + length - merged[-1][0])
        else:
            merged.append([offset, length])
    return [(offset, length) for offset, length in merged]


def covering_blocks(extents: Iterable[Extent], block: int, size: int) -> list[int]:
    """Start offsets of the ``block``-aligned blocks of a ``size``-byte disk that the extents
    touch (sorted, each once)."""
    found: set[int] = set()
    for offset, length in extents:
        first = max(0, offset) // block * block
        end = min(size, offset + length)
        found.update(range(first, end, block))
    return sorted(found)


def extent_bytes(extents: Iterable[Extent]) -> int:
    """The bytes the extents cover (they do not overlap: :func:`merge_extents`)."""
    return sum(length for _, length in extents)
