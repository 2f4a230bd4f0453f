"""The ZFS data path of a move (``--transport zfs``): the VM's dataset tree (its file system,
zvols, properties and snapshots) replicated to the peer's datastore in passes through the
core's replication helpers (:mod:`bhype_core.transfer`, ``zfs send -R | zfs receive -u``; the
man-page reasons for each flag are there).

cold: one recursive snapshot, one full send. warm: a full send of a first snapshot while the VM
runs, incremental sends of newer ones until a pass is small, then (VM stopped) a last
incremental. The copy is checked by the last snapshot's GUID on both ends (zfs-receive(8) has
already verified the stream's checksums). After success the move's ``bhype-move-*`` snapshots
are destroyed on both ends (the VM's own snapshots travel with it and stay). A rollback
destroys the copy on the peer, but only once a full pass created it: a first pass refused
because the name is taken there never touches what was there.

The state (snapshot names, whether the copy is ours) lives in the move's checkpoint data, so
a worker that died mid-move rolls back or cleans up exactly what this move made.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from bhype_core.plugin_api import (
    BhypeError,
    Conflict,
    ZfsEnd,
    destroy_snapshot,
    destroy_tree,
    estimate_send,
    same_snapshot,
    send_pass,
    take_snapshot,
    task_progress,
    zfs_guid,
)
from bhype_core.plugin_api import (
    zfs_exists as exists,
)

SNAPSHOT_PREFIX = "bhype-move-"
PASS_TIMEOUT = 24 * 3600.0


class ZfsPasses:
    """Passes of one move; ``data`` is the move's checkpoint data (``zfs_snapshots``,
    ``zfs_copy_ours``, ``passes``, ``bytes_sent`` are kept there)."""

    def __init__(self, context: Any, source: ZfsEnd, target: ZfsEnd, data: dict[str, Any], move_id: str,
                 on_pass: Callable[[], object] | None = None) -> None:
        self.context = context
        self.on_pass = on_pass  # saves ``data`` (the move's checkpoint): a crash then knows what to undo
        self.source = source
        self.target = target
        self.data = data
        self.move_id = move_id

    @property
    def snapshots(self) -> list[str]:
        return self.data.setdefault("zfs_snapshots", [])

    def estimate(self) -> int:
        """Bytes a full send of the VM's tree would be now."""
        return plan_estimate(self.source)

    def send(self, label: str, low: float, high: float) -> int:
        """Snapshot the source and send it (full the first time, else incremental from the
        previous pass's snapshot); returns the stream's bytes."""
        self.context.check_cancelled()
        name = f"{SNAPSHOT_PREFIX}{self.move_id}-{len(self.snapshots) + 1}"
        base = self.snapshots[-1] if self.snapshots else None
        self.snapshots.append(name)
        self.saved()
        if base is None:
            if exists(self.target):  # refused before anything is sent: what is there is not ours
                raise Conflict(f"{self.target.dataset} exists already on the peer; nothing was sent")
            # From here whatever lands under that name is this move's: a cancel can come after
            # the whole stream was produced (buffered in pipes and ssh) and the receive may still
            # complete, so a rollback must remove it even when this pass raised.
            self.data["zfs_copy_ours"] = True
        self.saved()
        take_snapshot(self.source, name)
        started = time.monotonic()
        result = send_pass(self.source, self.target, name, base,
                           on_progress=task_progress(self.context, label, start=low, span=high - low),
                           cancel=self.context.cancel_requested, timeout=PASS_TIMEOUT)
        seconds = time.monotonic() - started
        self.data["bytes_sent"] = self.data.get("bytes_sent", 0) + result.bytes_sent
        self.data.setdefault("passes", []).append({"label": label, "changed": result.bytes_sent,
                                                   "sent": result.bytes_sent, "seconds": round(seconds, 3),
                                                   "snapshot": name, "incremental": base is not None})
        kind = f"incremental from @{base}" if base else "full"
        self.context.log(f"{label}: {kind} zfs send of @{name}, {result.bytes_sent} bytes in {seconds:.1f} s")
        return result.bytes_sent

    def saved(self) -> None:
        if self.on_pass is not None:
            self.on_pass()

    def verify(self) -> str:
        """The last snapshot is on the peer with the same GUID; returns its name.

        :raises BhypeError: it is not (the copy is not the source's last state).
        """
        if not self.snapshots:
            raise BhypeError("nothing was sent")
        last = self.snapshots[-1]
        if not same_snapshot(self.source, self.target, last):
            raise BhypeError(f"the peer's copy {self.target.dataset}@{last} is not the source's snapshot "
                             "(GUIDs differ or it is missing)")
        return last

    def finish(self) -> None:
        """After success: the move's snapshots go, on both ends (absent ones are fine)."""
        for name in self.snapshots:
            destroy_snapshot(self.source, name)
            destroy_snapshot(self.target, name)

    def rollback(self) -> list[str]:
        """Destroy the peer's copy (when a pass of this move created it) and the move's
        snapshots here; returns what was removed. Safe to repeat."""
        removed = []
        if self.data.get("zfs_copy_ours") and destroy_tree(self.target):
            removed.append(f"the copy {self.target.dataset} on the peer")
        self.data["zfs_copy_ours"] = False
        for name in self.snapshots:
            if destroy_snapshot(self.source, name):
                removed.append(f"snapshot @{name} here")
        return removed


def plan_estimate(source: ZfsEnd) -> int:
    """Bytes a full ``zfs send -R`` of ``source`` would be now (``-n``: nothing is sent). A
    send needs a snapshot: a temporary one is taken and destroyed again at once."""
    name = f"{SNAPSHOT_PREFIX}plan-{secrets.token_hex(4)}"
    take_snapshot(source, name)
    try:
        return estimate_send(source, name)
    finally:
        destroy_snapshot(source, name)


def source_end(runtime: Any, store: Any, vm: str) -> ZfsEnd:
    """The VM's dataset tree in ZFS datastore ``store`` (its ``vm_dataset``), on the host the
    runner reaches.

    :raises BhypeError: the datastore cannot name a VM dataset (not ZFS).
    """
    name_of = getattr(store, "vm_dataset", None)
    if not callable(name_of):
        raise BhypeError(f"datastore {getattr(store, 'datastore', '?')} has no VM datasets (zfs send needs ZFS)")
    return ZfsEnd(runtime.runner, name_of(vm))


def peer_end(runner: Any, peer: Any, dataset: str) -> ZfsEnd:
    """The copy on the peer: every command through ``ssh`` with bHype's key and the pinned host
    key (``Peer.ssh``), so ``zfs send`` here pipes into ``ssh peer zfs receive`` there.

    ``runner`` is the worker's own (``runtime.local_runner``): the key and known_hosts files
    are on this machine, also when ``[runner]`` drives the datastore's host over SSH (then
    ``zfs send`` runs there and its stream goes through this machine into the ssh client)."""
    return ZfsEnd(runner, dataset, wrap=lambda argv: peer.ssh(*argv))


def guid(end: ZfsEnd, name: str) -> str | None:
    """Snapshot ``name``'s GUID on ``end`` (what the peer compares with what it received)."""
    return zfs_guid(end, name)


def converge(passes: ZfsPasses, *, running: bool, max_passes: int, small: int) -> None:
    """The passes while the VM runs (warm): a full one, then incrementals until one sends fewer
    than ``small`` bytes or ``max_passes`` ran. Nothing when the VM is not running (cold)."""
    if not running:
        return
    for attempt in range(1, max_passes + 1):
        sent = passes.send(f"warm pass {attempt} (VM running)", 0, 60)
        if attempt > 1 and sent < small:
            break
