"""``backup.verify {"point": ID}``: re-read a backup from its target and check every checksum.

The manifest (format in ``bhype_backup.manifest`` and docs/backup.md) is read back first and
must hash to the ``manifest_sha256`` the point row recorded when it was written; then every
file it lists is re-read from the target and compared with its whole-file sha256 and its
per-chunk sha256s (``check_file``). A local target is read in place (a symlink is refused:
the point's files are regular files); an rsync daemon or SSH target is fetched file by file
with rsync into a scratch directory under the worker's data directory, checked, and removed.
A point on a ZFS target is re-read on the target itself (``bhype_backup.zfs_verify``: each
zvol and file at the point's snapshot hashed there and compared with the manifest).

The point records ``verify_state`` (``ok``/``failed``) and ``verified_at``; a mismatch is a
``backup.verify_mismatch`` event and a failed task naming the files and chunks.
"""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path
from typing import Any

from sqlmodel import col, select

from bhype_core.plugin_api import BhypeError, Event, NotFound, TaskFailed, ValidationErrors, session, utcnow

VERIFY_KIND = "backup.verify"
WEEKLY_KIND = "backup.verify_weekly"
MANIFEST = "manifest.json"


def get_point(runtime: Any, point_id: int) -> Any:
    """A complete point (:class:`NotFound` otherwise)."""
    from bhype_backup.points import get_point as get

    return get(runtime, point_id)


def point_owner(principal: Any, arguments: dict[str, Any], runtime: Any) -> None:
    """``authorize`` of ``backup.verify``: admins, or the owner of the point's VM (another
    user's point answers like a missing one)."""
    if principal.is_admin:
        return
    from bhype_core.plugin_api import list_vms

    point_id = arguments.get("point")
    if not isinstance(point_id, int):
        raise ValidationErrors([("point", "a backup point id")])
    point = get_point(runtime, point_id)
    if not any(vm.uuid == point.vm_uuid for vm in list_vms(runtime, owner=principal.name)):
        raise NotFound(f"no backup point {point_id}")


def set_state(runtime: Any, point_id: int, state: str) -> None:
    """Record the point's verify state (and when)."""
    from bhype_backup.models import BackupPoint

    with session(runtime, write=True) as db:
        row = db.get(BackupPoint, point_id)
        if row is not None:
            row.verify_state, row.verified_at = state, utcnow()
            db.add(row)


def point_exists(runtime: Any, point_id: int) -> bool:
    """Whether point ``point_id`` still has its row."""
    from bhype_backup.models import BackupPoint

    with session(runtime) as db:
        return db.get(BackupPoint, point_id) is not None


def check_point(context: Any, point: Any, endpoint: Any) -> list[dict[str, Any]]:
    """Every problem found re-reading ``point`` through ``endpoint`` (empty: all match)."""
    from bhype_backup.manifest import check_file, parse_manifest

    data = endpoint.read_file(f"{point.path}/{MANIFEST}")
    if point.manifest_sha256 and hashlib.sha256(data).hexdigest() != point.manifest_sha256:
        return [{"file": MANIFEST, "problem": "the manifest is not the one written with this backup"}]
    manifest = parse_manifest(data)
    total = max(sum(entry.size for entry in manifest.files), 1)
    done = 0
    problems: list[dict[str, Any]] = []
    scratch_root = Path(context.settings.core.data_dir) / "backup-verify"
    scratch_root.mkdir(parents=True, exist_ok=True, mode=0o700)
    with tempfile.TemporaryDirectory(prefix="verify-", dir=scratch_root) as scratch:
        for entry in manifest.files:
            context.check_cancelled()
            context.progress(100.0 * done / total, f"checking {entry.stored}")
            relative = f"{point.path}/{entry.stored}"
            try:
                local = fetch(endpoint, relative, Path(scratch))
            except BhypeError as exc:
                problems.append({"file": entry.stored, "problem": f"cannot be read: {exc.message}"})
                done += entry.size
                continue
            bad = check_file(local, entry, manifest.chunk_size)
            if bad:
                problems.append({"file": entry.stored, "problem": f"{len(bad)} chunk(s) differ", "chunks": bad[:100]})
            if local.parent == Path(scratch):
                local.unlink()
            done += entry.size
    return problems


def fetch(endpoint: Any, relative: str, scratch: Path) -> Path:
    """The file ``relative`` of the target as a local path: in place on a local target,
    else copied here with rsync (whole file, no delta: a plain re-read).

    :raises NotFound: missing, not a regular file, or unreadable.
    """
    if endpoint.dest.kind == "local":
        path = Path(endpoint.path(relative))
        if path.is_symlink() or not path.is_file():
            raise NotFound(f"{relative} is missing on target {endpoint.target.name}")
        return path
    try:
        endpoint.rsync([endpoint.url(relative, directory=False)], str(scratch) + "/", inplace=False, delta=False)
    except Exception as exc:  # noqa: BLE001 (any transfer failure: the file cannot be re-read)
        raise NotFound(f"{relative} cannot be read from target {endpoint.target.name}: {exc}") from exc
    local = scratch / Path(relative).name
    if local.is_symlink() or not local.is_file():
        raise NotFound(f"{relative} is not a regular file on target {endpoint.target.name}")
    return local


def verify(context: Any, point: int) -> dict[str, Any]:
    """``backup.verify``: check point ``point``; fails (and notifies) on any mismatch."""
    from bhype_backup.endpoint import Endpoint
    from bhype_backup.models import BackupTarget

    runtime = context.runtime
    row = get_point(runtime, point)
    with session(runtime) as db:
        target = db.exec(select(BackupTarget).where(col(BackupTarget.name) == row.target)).first()
    if target is None:
        raise NotFound(f"point {point}'s target {row.target} no longer exists")
    set_state(runtime, point, "running")
    context.log(f"verifying point {point} ({row.vm_name}) on {row.target}")
    try:
        if target.kind == "zfs":
            from bhype_backup.zfs_verify import check_zfs_point

            problems = check_zfs_point(context, row, target)
        else:
            problems = check_point(context, row, Endpoint(runtime, target, context.runner))
    except BaseException:
        set_state(runtime, point, "none")
        raise
    context.progress(100.0, "checked")
    if problems and not point_exists(runtime, point):
        # Deleted while being read (retention, or a delete): nothing is wrong with a backup.
        context.log(f"point {point} was deleted while it was verified", "warning")
        return {"point": point, "state": "deleted", "problems": []}
    if not problems:
        set_state(runtime, point, "ok")
        context.log("every checksum matches the manifest")
        return {"point": point, "state": "ok", "problems": []}
    set_state(runtime, point, "failed")
    for problem in problems:
        context.log(f"{problem['file']}: {problem['problem']}", "error")
    runtime.notify(Event("backup.verify_mismatch",
                         f"backup point {point} of {row.vm_name} on {row.target} does not match its manifest: "
                         f"{', '.join(p['file'] for p in problems)}", severity="error", subject=f"vm:{row.vm_name}",
                         data={"point": point, "vm": row.vm_name, "target": row.target,
                               "files": [p["file"] for p in problems]}))
    raise TaskFailed(f"point {point} does not match its manifest: "
                     + "; ".join(f"{p['file']}: {p['problem']}" for p in problems))


def verify_weekly(context: Any) -> dict[str, Any]:
    """``backup.verify_weekly`` (periodic, on by default): queue ``backup.verify`` for the
    newest complete point of each VM on each target (``[backup_jobs] weekly_verify =
    false`` turns it off)."""
    from bhype_backup.models import BackupPoint
    from bhype_core.plugin_api import submit_as_system

    if not context.settings.section("backup_jobs").weekly_verify:
        return {"skipped": "weekly_verify is off"}
    from bhype_backup.models import BackupTarget

    newest: dict[tuple[str, str], Any] = {}
    with session(context.runtime) as db:
        known = set(db.exec(select(BackupTarget.name)).all())
        for point in db.exec(select(BackupPoint).where(col(BackupPoint.complete).is_(True))).all():
            if point.target not in known:  # a target removed since: nothing to re-read
                continue
            key = (point.vm_uuid, point.target)
            if key not in newest or point.created > newest[key].created:
                newest[key] = point
    queued = {}
    for point in sorted(newest.values(), key=lambda p: p.id or 0):
        queued[str(point.id)] = submit_as_system(context.runtime, VERIFY_KIND, {"point": point.id}).id
    context.log(f"queued {len(queued)} verification(s)")
    return {"queued": queued}

