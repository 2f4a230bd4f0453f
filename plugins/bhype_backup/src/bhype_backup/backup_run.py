"""Task ``backup.run``: one VM to one target, as a new complete point (or nothing).

1. plan: the VM, the target, the mode (refused before anything changes when impossible);
   ``bhype_vm_before_backup`` may veto;
2. a point row (``complete`` false: never listed) and the point's directory on the target;
3. the VM's files (see :mod:`bhype_backup.sources` for what each mode does) are checksummed
   (manifest) and sent with rsync: disks with the delta algorithm (``--no-whole-file
   --inplace``) against the newest complete point as basis (``--link-dest`` on POSIX targets:
   unchanged files are hard links; ``--copy-dest`` on Windows targets: no hard links, the
   receiver copies unchanged data locally, so only changed blocks cross the network), plus the
   basis of an interrupted run of this VM (so a rerun resumes from what was transferred);
4. the manifest last, atomically; the row becomes complete; leftovers of interrupted runs go;
5. ``bhype_vm_after_backup``.

A failure or a cancel removes the new point's directory (best effort) and its row: no point is
ever half listed. The task holds the VM's lock, so destroy, move and rollback wait.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import socket
import tempfile
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from bhype_backup import __version__
from bhype_backup.endpoint import Endpoint
from bhype_backup.layout import MANIFEST, point_name, point_path, safe_name
from bhype_backup.manifest import Manifest, describe_file
from bhype_backup.models import BackupPoint
from bhype_backup.points import leftovers, list_points
from bhype_backup.sources import SourceView, check_mode, open_source
from bhype_backup.targets import get_target
from bhype_core.plugin_api import (
    BhypeError,
    Cancelled,
    Event,
    NotFound,
    TransferFailed,
    ValidationErrors,
    active_driver,
    find_vm,
    hook_errors,
    open_datastore,
    rsync_argv,
    run_rsync,
    session,
    task_progress,
    utcnow,
    vm_after,
    vm_before,
    vm_ref,
)


def core_version() -> str:
    try:
        return version("bhype-core")
    except PackageNotFoundError:
        return "unknown"


def plan(runtime: Any, vm: str, target: str, mode: str) -> tuple[Any, Any, Any]:
    """The VM row, the target row and the datastore, or a clear refusal."""
    row = find_vm(runtime, vm)
    if row is None:
        raise NotFound(f"no VM named {vm!r}")
    tgt = get_target(runtime, target)
    if tgt.kind == "zfs":
        raise ValidationErrors([("target", f"target {target} is a ZFS target: this version backs up to "
                                           "directory, rsync daemon and SSH targets only")])
    store = open_datastore(runtime, row.datastore)
    check_mode(store, mode, active_driver(runtime))
    return row, tgt, store


Entry = tuple[str, str, Path, str | None, str]


def _stage(view: SourceView, ref: Any, owner: str, staging: Path) -> tuple[Path, list[Entry]]:
    """A private view of the point: ``disks/<safe>`` and ``config/<safe>`` symlinks to the
    files (rsync ``--copy-links`` sends their content) plus ``config/spec.json`` and
    ``config/metadata.json``. Returns the view and ``(role, stored, path, volume, original)``."""
    root = staging / "view"
    (root / "disks").mkdir(parents=True)
    (root / "config").mkdir()
    taken: set[str] = {"spec.json", "metadata.json"}
    entries: list[Entry] = []
    for volume, path in view.disks.items():
        stored = "disks/" + safe_name(f"{volume}.img", taken)
        (root / stored).symlink_to(path)
        entries.append(("disk", stored, path, volume, f"{volume}.img"))
    for name, path in view.config.items():
        stored = "config/" + safe_name(name, taken)
        (root / stored).symlink_to(path)
        entries.append(("config", stored, path, None, name))
    documents = {"spec.json": ref.spec.to_data(),
                 "metadata.json": {"name": ref.name, "uuid": ref.uuid, "owner": owner, "datastore": ref.datastore}}
    for name, document in documents.items():
        (root / "config" / name).write_text(json.dumps(document, indent=1, sort_keys=True))
        entries.append(("config", f"config/{name}", root / "config" / name, None, name))
    return root, entries


def _finish_row(runtime: Any, point_id: int, **values: Any) -> None:
    with session(runtime, write=True) as db:
        row = db.get(BackupPoint, point_id)
        assert row is not None
        for key, value in values.items():
            setattr(row, key, value)
        db.add(row)


def _forget(runtime: Any, endpoint: Endpoint, point: BackupPoint) -> None:
    """Remove a point that did not complete: its directory (best effort) and its row."""
    try:
        endpoint.remove_tree(point.path)
    except Exception:  # noqa: BLE001 (the target may be what failed; the row must go anyway)
        pass
    with session(runtime) as db:
        row = db.get(BackupPoint, point.id)
        if row is not None:
            db.delete(row)


def run_backup(context: Any, vm: str, target: str, mode: str = "stop", job: int | None = None) -> dict[str, Any]:
    """Task ``backup.run``: back ``vm`` up to ``target`` in ``mode``; returns ``{"point": ID, …}``."""
    runtime = context.runtime
    row, tgt, store = plan(runtime, vm, target, mode)
    ref = vm_ref(runtime, row)
    endpoint = Endpoint(runtime, tgt)
    vm_before(runtime.pm, "backup", ref, context, destination=target)
    started = datetime.now(UTC)
    interrupted = leftovers(runtime, row.uuid, target)
    previous = next(iter(list_points(runtime, vm_uuid=row.uuid, target=target)), None)
    with session(runtime) as db:
        point = BackupPoint(vm_uuid=row.uuid, vm_name=row.name, target=target, path="", mode=mode,
                            created=started, job_id=job, task_id=None)
        db.add(point)
        db.flush()
        point.path = point_path(row.uuid, point_name(started, point.id or 0))
    assert point.id is not None
    _finish_row(runtime, point.id, path=point.path)
    context.log(f"backing {vm} up to {target} ({tgt.kind}{', windows' if tgt.windows else ''}) as {point.path}, "
                f"mode {mode}")
    try:
        result = _transfer(context, ref, row, store, endpoint, point, previous, interrupted, started)
    except Cancelled:
        _forget(runtime, endpoint, point)
        context.log(f"cancelled: point {point.path} removed", "warning")
        raise
    except TransferFailed as exc:
        context.log(f"the backup did not complete: {point.path} stays unlisted for the next run to resume from",
                    "error")
        if "No space left on device" in exc.stderr:
            free = endpoint.free_bytes()
            runtime.notify(Event("backup.target_full", f"backup target {target} is full (backing up {vm})",
                                 severity="warning", subject=f"backup_target:{target}",
                                 data={"target": target, "free": free}))
            raise BhypeError(f"target {target} is full: {exc.message}") from exc
        raise
    except BaseException:
        # Never listed (no manifest, not complete); what reached the target is the basis the
        # next run of this VM to this target resumes from (then removed).
        context.log(f"the backup did not complete: {point.path} stays unlisted for the next run to resume from",
                    "error")
        raise
    for old in interrupted:  # their data served as a basis; the new point is complete without them
        _forget(runtime, endpoint, old)
    failures = vm_after(runtime.pm, "backup", ref, context, destination=target)
    return {**result, **hook_errors(failures)}


def _transfer(context: Any, ref: Any, row: Any, store: Any, endpoint: Endpoint, point: BackupPoint,
              previous: BackupPoint | None, interrupted: list[BackupPoint], started: datetime) -> dict[str, Any]:
    runtime, tgt = context.runtime, endpoint.target
    staging = Path(tempfile.mkdtemp(prefix=f"bhype-backup-{point.id}-"))
    try:
        with open_source(context, ref, store, point.mode, staging / "crash") as view:
            if not view.disks:  # a point of a few KiB: say why
                view.warnings.append(f"{ref.name} has no disks: the point holds only its configuration")
                context.log(view.warnings[-1], "warning")
            root, entries = _stage(view, ref, row.owner, staging)
            # The files are stable while the view is open (stopped VM, snapshot or staging copy):
            # checksum them in a thread while rsync reads them too (one read from the page cache).
            hashing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bhype-backup-hash")
            described = hashing.submit(lambda: [describe_file(path, role, original, stored, volume)
                                                for role, stored, path, volume, original in entries])
            endpoint.makedirs(point.path)
            bases = [f"../../{p.path}" for p in [*reversed(interrupted), *([previous] if previous else [])]]
            options = endpoint.rsync_options()
            bwlimit = runtime.settings.section("backup").bwlimit
            # --checksum: a disk image can change without its size or (whole-second, or with
            # --modify-window=1 two-second) mtime changing; rsync's quick check would then skip it.
            # Files equal by checksum are still hard-linked/copied from the basis.
            extra = ["--copy-links", "--checksum", "--exclude=/manifest.json"]
            extra += [f"--bwlimit={bwlimit}"] if bwlimit else []
            # Sparse-aware on POSIX targets (holes stay holes); a Windows rsync may not keep them.
            argv = rsync_argv([str(root) + "/"], endpoint.url(point.path), **options, extra=extra,
                              copy_dest=bases if tgt.windows else (), link_dest=() if tgt.windows else bases,
                              sparse=not tgt.windows)
            context.log(f"rsync {len(entries)} file(s)"
                        + (f", basis {previous.path}" if previous else ", full (no earlier point)"))
            try:
                stats = run_rsync(context.runner, argv,
                                  on_progress=task_progress(context, "transfer", start=5, span=90),
                                  cancel=context.cancel_requested, timeout=7 * 24 * 3600)
                files = described.result()
            finally:
                hashing.shutdown(wait=True)
            manifest = Manifest(vm={"name": ref.name, "uuid": ref.uuid, "owner": row.owner,
                                    "datastore": row.datastore},
                                spec=ref.spec.to_data(), mode=point.mode, consistency=view.consistency,
                                source_host=socket.gethostname(), bhype_version=core_version(),
                                plugin_version=__version__, started=started.isoformat(), windows=tgt.windows,
                                basis=previous.path if previous else None, stop_window=view.stop_window,
                                warnings=list(view.warnings), files=files)
        manifest.finished = datetime.now(UTC).isoformat()
        data = manifest.to_json()
        (staging / MANIFEST).write_bytes(data)
        context.check_cancelled()
        # Last and atomic: without --inplace rsync writes a temporary file and renames it.
        endpoint.rsync([str(staging / MANIFEST)], endpoint.url(point.path), inplace=False, delta=False)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    digest = hashlib.sha256(data).hexdigest()
    note = "; ".join(manifest.warnings)
    assert point.id is not None
    stored = stats.transferred_size + len(data)
    _finish_row(runtime, point.id, complete=True, finished=utcnow(), size=manifest.size, stored_bytes=stored,
                bytes_sent=stats.bytes_sent, manifest_sha256=digest, note=note, task_id=None)
    context.log(f"point {point.id} complete: {manifest.size} bytes, {stored} new on the target, "
                f"{stats.bytes_sent} sent (literal {stats.literal_bytes}, matched {stats.matched_bytes})")
    context.progress(100, f"point {point.id} complete")
    return {"point": point.id, "path": point.path, "target": tgt.name, "mode": point.mode,
            "consistency": manifest.consistency, "size": manifest.size, "stored_bytes": stored,
            "bytes_sent": stats.bytes_sent,
            "literal_bytes": stats.literal_bytes, "matched_bytes": stats.matched_bytes,
            "basis": manifest.basis, "stop_window": manifest.stop_window, "warnings": manifest.warnings,
            "manifest_sha256": digest}

