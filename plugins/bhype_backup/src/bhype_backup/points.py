"""Backup point rows: start, complete, list (complete ones only), and delete (bak2's retention
prunes through :func:`delete_point`)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel
from sqlmodel import col, select

from bhype_backup.models import BackupPoint, BackupTarget
from bhype_core.plugin_api import NotFound, session


class PointPublic(BaseModel):
    """A complete point as the API and CLI show it."""

    id: int
    vm_name: str
    vm_uuid: str
    target: str
    path: str
    mode: str
    created: Any
    finished: Any
    duration_seconds: float | None
    size: int
    stored_bytes: int
    bytes_sent: int
    manifest_sha256: str
    job_id: int | None
    note: str
    verify_state: str
    verified_at: Any
    drill_state: str
    drill_at: Any
    drill_excerpt: str


def public(point: BackupPoint) -> PointPublic:
    """What the API shows of ``point``."""
    duration = (point.finished - point.created).total_seconds() if point.finished else None
    return PointPublic(**point.model_dump(exclude={"complete", "task_id", "id"}), id=point.id or 0,
                       duration_seconds=duration)


def list_points(runtime: Any, vm: str | None = None, target: str | None = None,
                vm_uuid: str | None = None) -> list[BackupPoint]:
    """Complete points, newest first (an interrupted run is never listed)."""
    query = select(BackupPoint).where(col(BackupPoint.complete).is_(True))
    if vm is not None:
        query = query.where(BackupPoint.vm_name == vm)
    if vm_uuid is not None:
        query = query.where(BackupPoint.vm_uuid == vm_uuid)
    if target is not None:
        query = query.where(BackupPoint.target == target)
    with session(runtime) as db:
        return list(db.exec(query.order_by(col(BackupPoint.created).desc(), col(BackupPoint.id).desc())))


def get_point(runtime: Any, point_id: int, *, complete: bool = True) -> BackupPoint:
    """Point ``point_id``; :class:`NotFound` for an unknown or (by default) incomplete one."""
    with session(runtime) as db:
        point = db.get(BackupPoint, int(point_id))
    if point is None or (complete and not point.complete):
        raise NotFound(f"no backup point {point_id}")
    return point


def leftovers(runtime: Any, vm_uuid: str, target: str) -> list[BackupPoint]:
    """Incomplete points of this VM on this target (interrupted runs), oldest first."""
    query = select(BackupPoint).where(BackupPoint.vm_uuid == vm_uuid, BackupPoint.target == target,
                                      col(BackupPoint.complete).is_(False))
    with session(runtime) as db:
        return list(db.exec(query.order_by(col(BackupPoint.id))))


def delete_point(runtime: Any, point_id: int, runner: Any = None) -> dict[str, Any]:
    """Delete point ``point_id``: its directory on the target, then its row. Retention (bak2)
    calls this; so does ``DELETE /points/{id}`` (task ``backup.delete_point``).

    :raises NotFound: no such point.
    """
    from bhype_backup.endpoint import Endpoint

    with session(runtime) as db:
        point = db.get(BackupPoint, int(point_id))
        target = None
        if point is not None:
            target = db.exec(select(BackupTarget).where(BackupTarget.name == point.target)).first()
    if point is None:
        raise NotFound(f"no backup point {point_id}")
    if target is not None:
        Endpoint(runtime, target, runner).remove_tree(point.path)
    with session(runtime) as db:
        row = db.get(BackupPoint, point.id)
        if row is not None:
            db.delete(row)
    return {"point": point_id, "path": point.path, "target": point.target}
