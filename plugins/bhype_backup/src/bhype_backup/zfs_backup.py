"""Task ``backup.run`` to a ZFS target: ``zfs send -i`` from the newest common snapshot.

1. plan: the VM's datastore must stream (ZFS); ``bhype_vm_before_backup`` may veto;
2. ``zfs snapshot -r <vm dataset>@bhype-backup-<target>.<time>-<point>`` held with ``zfs hold
   -r bhype-backup`` (the datastore's consistent point; ``stop`` stops the VM around it);
3. per dataset of the VM (its filesystem, each zvol), the newest snapshot both sides have, by
   GUID (``zfs list -H -p -o name,guid -t snapshot`` on both): ``zfs send -i @BASE`` into the
   VM's chain on the target; a dataset the target lacks goes in full; a target dataset that has
   snapshots but none in common means a broken chain: everything goes in full to a new chain
   ``<uuid>-<point id>``, the point's note says so;
4. ``zfs hold -r bhype-backup`` on the target's new snapshot, then the manifest (last, atomic);
5. only now the earlier bases of this target on the source are released and destroyed.

A failure or a cancel destroys what this run made (the target's new snapshot, a chain it
created, the source snapshot) and the row: nothing partial stays. The receive is not resumable
(zfs-receive(8) without ``-s``): ZFS discards an interrupted receive itself. The next run sends
again from the same held base, so nothing already on the target is sent twice. zfs-send(8),
zfs-receive(8), zfs-hold(8).
"""

from __future__ import annotations

import hashlib
import socket
import time
from datetime import UTC, datetime
from typing import Any

from bhype_backup import __version__, zfs_argv, zfs_source
from bhype_backup.backup_run import _finish_row, core_version
from bhype_backup.manifest import Manifest
from bhype_backup.models import BackupPoint
from bhype_backup.points import leftovers, list_points
from bhype_backup.sources import _subtask, volume_names
from bhype_backup.targets import get_target
from bhype_backup.zfs_target import ZfsTarget
from bhype_core.plugin_api import (
    BhypeError,
    Cancelled,
    NotFound,
    StorageCapability,
    ValidationErrors,
    find_vm,
    hook_errors,
    is_running,
    open_datastore,
    send_receive,
    session,
    task_progress,
    utcnow,
    vm_after,
    vm_before,
    vm_ref,
    zfs_send_argv,
)


def snapshot_prefix(target: str) -> str:
    """``bhype-backup-<target>.``: a target name has no dot, so prefixes never overlap."""
    return f"{zfs_argv.SNAPSHOT_PREFIX}{target}."


def plan(runtime: Any, vm: str, target: str, mode: str) -> tuple[Any, Any, Any]:
    """The VM row, the target row and the datastore, or a clear refusal before anything changes."""
    row = find_vm(runtime, vm)
    if row is None:
        raise NotFound(f"no VM named {vm!r}")
    tgt = get_target(runtime, target)
    if mode not in ("snapshot", "stop", "crash"):
        raise ValidationErrors([("mode", "must be snapshot, stop or crash")])
    store = open_datastore(runtime, row.datastore)
    missing = [c.value for c in (StorageCapability.SNAPSHOT, StorageCapability.EXPORT_STREAM)
               if c not in store.capabilities]
    if missing:
        raise ValidationErrors([("target", f"target {target} is a ZFS target: it receives zfs send streams, and "
                                           f"datastore {store.datastore} has no {' or '.join(missing)}; "
                                           "back this VM up to a directory, rsync or SSH target")])
    return row, tgt, store


def run_zfs_backup(context: Any, vm: str, target: str, mode: str = "snapshot",
                   job: int | None = None) -> dict[str, Any]:
    """``backup.run`` when ``target`` is a ZFS target; returns ``{"point": ID, …}``."""
    runtime = context.runtime
    row, tgt, store = plan(runtime, vm, target, mode)
    ref = vm_ref(runtime, row)
    remote = ZfsTarget(runtime, tgt)
    vm_before(runtime.pm, "backup", ref, context, destination=target)
    started = datetime.now(UTC)
    previous = next(iter(list_points(runtime, vm_uuid=row.uuid, target=target)), None)
    interrupted = leftovers(runtime, row.uuid, target)
    with session(runtime) as db:
        point = BackupPoint(vm_uuid=row.uuid, vm_name=row.name, target=target, path="", mode=mode,
                            created=started, job_id=job, task_id=None)
        db.add(point)
        db.flush()
        point_id = point.id or 0
    snapshot = f"{snapshot_prefix(target)}{started:%Y%m%dT%H%M%S}-{point_id}"
    run = _Run(context, ref, row, store, remote, point_id, snapshot, mode, previous)
    context.log(f"backing {vm} up to ZFS target {target} ({remote.root}), mode {mode}, snapshot {snapshot}")
    try:
        result = run.execute(started)
    except BaseException as exc:
        run.undo("cancelled" if isinstance(exc, Cancelled) else "failed")
        raise
    for old in interrupted:  # rows of runs that never completed (worker killed): their data is gone or unlisted
        with session(runtime) as db:
            stale = db.get(BackupPoint, old.id)
            if stale is not None:
                db.delete(stale)
        if "@" in old.path:
            remote.delete_point(old.path)
    failures = vm_after(runtime.pm, "backup", ref, context, destination=target)
    return {**result, **hook_errors(failures)}


class _Run:
    """One run's state, so a failure can undo exactly what it made."""

    def __init__(self, context: Any, ref: Any, row: Any, store: Any, remote: ZfsTarget, point_id: int,
                 snapshot: str, mode: str, previous: BackupPoint | None) -> None:
        self.context, self.ref, self.row, self.store, self.remote = context, ref, row, store, remote
        self.runner = context.runtime.runner
        self.point_id, self.snapshot, self.mode, self.previous = point_id, snapshot, mode, previous
        self.source = store.vm_dataset(ref.name)
        self.taken = False
        self.chain = previous.path.split("@")[0] if previous else row.uuid
        self.new_chain = False
        self.received = False

    def take_snapshot(self) -> dict[str, Any] | None:
        """The held recursive snapshot; ``stop`` stops a running VM only around it."""
        volumes = volume_names(self.ref.spec)
        if self.mode == "stop" and is_running(self.context.runtime, self.ref.name):
            stopped = datetime.now(UTC)
            _subtask(self.context, "vm.stop", self.ref.name)
            try:
                self.store.snapshot(self.ref.name, volumes, zfs_argv.HOLD_TAG, name=self.snapshot)
                self.taken = True
            finally:
                _subtask(self.context, "vm.start", self.ref.name)
            back = datetime.now(UTC)
            return {"stopped_at": stopped.isoformat(), "started_at": back.isoformat(),
                    "seconds": round((back - stopped).total_seconds(), 3)}
        self.store.snapshot(self.ref.name, volumes, zfs_argv.HOLD_TAG, name=self.snapshot)
        self.taken = True
        return None

    def bases(self, datasets: list[zfs_source.SourceDataset]) -> tuple[dict[str, str | None], list[str]]:
        """Per dataset the newest common snapshot (or ``None``: full); a broken chain moves
        everything to a new chain in full. Returns the bases and warnings."""
        found: dict[str, str | None] = {}
        broken = []
        for item in datasets:
            theirs = self.remote.snapshots(self.target_dataset(item))
            base = zfs_argv.newest_common(zfs_source.snapshots(self.runner, item.name), theirs)
            # zfs-receive(8): an incremental stream needs the target's *most recent* snapshot
            # to be its source; a newer one there (made since) breaks the chain as well.
            if theirs and (base is None or theirs[-1][0] != base):
                broken.append(item.relative or "(the VM dataset)")
            found[item.relative] = base
        if not broken:
            if not any(found.values()) and self.remote.exists(self.remote.dataset(self.chain)):
                broken.append("(the VM dataset)")  # exists without snapshots: cannot receive a full stream there
            else:
                return found, []
        old = self.chain
        self.chain, self.new_chain = f"{self.row.uuid}-{self.point_id}", True
        warning = (f"broken chain: {', '.join(broken)} on target {self.remote.name} share no snapshot with the "
                   f"source; full send to a new chain {self.chain} (the old chain {old} keeps its points)")
        return {item.relative: None for item in datasets}, [warning]

    def target_dataset(self, item: zfs_source.SourceDataset) -> str:
        return self.remote.dataset(f"{self.chain}/{item.relative}" if item.relative else self.chain)

    def execute(self, started: datetime) -> dict[str, Any]:
        context = self.context
        stop_window = self.take_snapshot()
        context.log(f"snapshot {self.source}@{self.snapshot} taken and held ({zfs_argv.HOLD_TAG})")
        self.remote.prepare()
        datasets = zfs_source.tree(self.runner, self.source)
        if not self.previous and not self.remote.exists(self.remote.dataset(self.chain)):
            self.new_chain = True
        bases, warnings = self.bases(datasets)
        for warning in warnings:
            context.log(warning, "warning")
        # Recorded now (still unlisted): a run cut off by a killed worker is cleaned up by the next.
        _finish_row(context.runtime, self.point_id, path=f"{self.chain}@{self.snapshot}")
        files = zfs_source.describe(self.runner, self.store, self.ref.name, volume_names(self.ref.spec), datasets,
                                    self.snapshot)
        sent, streams = 0, []
        for index, item in enumerate(datasets):
            base = bases[item.relative]
            destination = self.target_dataset(item)
            send = zfs_send_argv(f"{item.name}@{self.snapshot}", base=f"@{base}" if base else None)
            receive = self.remote.argv(zfs_argv.receive(destination))
            context.log(f"zfs send {'-i @' + base if base else '(full)'} {item.name}@{self.snapshot} -> "
                        f"{self.remote.name}:{destination}")
            self.received = True
            moved = send_receive(self.runner, send, receive, to=self.remote.runner,
                                 on_progress=task_progress(context, item.relative or "vm dataset",
                                                           start=10 + 80 * index / len(datasets),
                                                           span=80 / len(datasets)),
                                 cancel=context.cancel_requested, timeout=7 * 24 * 3600)
            sent += moved.bytes_sent
            streams.append({"dataset": item.relative, "base": base, "bytes_sent": moved.bytes_sent})
        point_path = f"{self.chain}@{self.snapshot}"
        self.remote.hold(point_path)
        context.check_cancelled()
        basis = f"{self.chain}@{next((b for b in bases.values() if b), '')}" if any(bases.values()) else None
        manifest = Manifest(vm={"name": self.ref.name, "uuid": self.ref.uuid, "owner": self.row.owner,
                                "datastore": self.row.datastore},
                            spec=self.ref.spec.to_data(), mode=self.mode,
                            consistency="crash-consistent" if self.mode == "crash" else "consistent",
                            source_host=socket.gethostname(), bhype_version=core_version(),
                            plugin_version=__version__, started=started.isoformat(), basis=basis,
                            stop_window=stop_window, warnings=warnings, files=files)
        manifest.finished = datetime.now(UTC).isoformat()
        data = manifest.to_json()
        self.remote.write_manifest(point_path, data)
        digest = hashlib.sha256(data).hexdigest()
        _finish_row(context.runtime, self.point_id, path=point_path, complete=True, finished=utcnow(),
                    size=manifest.size, bytes_sent=sent, manifest_sha256=digest, note="; ".join(warnings))
        context.log(f"point {self.point_id} complete: {point_path}, {sent} bytes sent")
        released = zfs_source.release_older(self.store, self.runner, self.ref.name, self.source,
                                            snapshot_prefix(self.remote.name), self.snapshot, context.log)
        if released:
            context.log(f"earlier base(s) released on the source: {', '.join(released)}")
        context.progress(100, f"point {self.point_id} complete")
        return {"point": self.point_id, "path": point_path, "target": self.remote.name, "mode": self.mode,
                "consistency": manifest.consistency, "size": manifest.size, "bytes_sent": sent,
                "full": not any(bases.values()), "basis": basis, "streams": streams, "stop_window": stop_window,
                "warnings": warnings, "manifest_sha256": digest}

    def undo(self, why: str) -> None:
        """Destroy what this run made; each step best effort (the target may be what failed)."""
        log = self.context.log
        steps = []
        if self.received:
            steps.append(("target snapshot", lambda: self._undo_target()))
        if self.taken:
            steps.append(("source snapshot", self._undo_source))
        for label, step in steps:
            try:
                step()
            except Exception as exc:  # noqa: BLE001 (keep undoing the rest; say what stays)
                log(f"{why}: could not remove the {label} of this run: {exc}", "error")
        with session(self.context.runtime) as db:
            row = db.get(BackupPoint, self.point_id)
            if row is not None:
                db.delete(row)
        log(f"{why}: nothing of point {self.point_id} stays (the base stays held for the next run)", "warning")

    def _undo_source(self, timeout: float = 30.0) -> None:
        """Release and destroy this run's source snapshot. A cut ``zfs send`` on the datastore's
        host may still be reading it ("dataset is busy"; over an SSH-driven runner the remote
        process can outlive its ssh client): try for a while, then leave it released, for the
        next successful run to destroy (``release_older``)."""
        full = f"{self.source}@{self.snapshot}"
        deadline = time.monotonic() + timeout
        while any(name == self.snapshot for name, _ in zfs_source.snapshots(self.runner, self.source)):
            self.runner.run(zfs_argv.release(full), check=False, timeout=120)
            if self.runner.run(zfs_argv.destroy_snapshot(full), check=False, timeout=120).returncode == 0:
                return
            if time.monotonic() > deadline:
                raise BhypeError(f"{full} is still busy (a cut zfs send reads it): released, the next run "
                                 "destroys it")
            time.sleep(1.0)

    def _undo_target(self) -> None:
        self.remote.wait_no_partial(self.remote.dataset(self.chain))
        path = f"{self.chain}@{self.snapshot}"
        self.remote.delete_point(path)
        if self.new_chain and self.remote.exists(self.remote.dataset(self.chain)):
            self.remote.run(zfs_argv.destroy_dataset(self.remote.dataset(self.chain)))
