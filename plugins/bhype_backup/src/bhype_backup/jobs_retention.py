"""Pruning a job's backup points by its retention (the core's one policy).

Only complete points that this job made, of one VM on the job's target, are candidates; the
points are not labelled with periods, so each is labelled by bucket (the newest point of a UTC
day is that day's ``daily``, …: ``retention_label_by_bucket``) before ``retention_prune``
decides. Points go through ``bhype_backup.points.delete_point`` (the one way a point is removed).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import col, select

from bhype_backup.jobs_models import BackupJob
from bhype_core.plugin_api import (
    RetentionCandidate,
    RetentionPolicy,
    retention_label_by_bucket,
    retention_prune,
    session,
)


def doomed_points(points: list[Any], policy: RetentionPolicy, now: datetime) -> list[int]:
    """Ids of ``points`` (rows with ``id`` and ``created``) to delete under ``policy``, oldest first."""
    candidates = [RetentionCandidate(str(p.id), p.created) for p in points]
    return [int(name) for name in retention_prune(retention_label_by_bucket(candidates, policy), policy, now)]


def job_points(runtime: Any, job: BackupJob, vm_uuid: str) -> list[Any]:
    """The complete points job ``job`` made of the VM ``vm_uuid`` on its target."""
    from bhype_backup.models import BackupPoint

    query = select(BackupPoint).where(col(BackupPoint.job_id) == job.id, col(BackupPoint.vm_uuid) == str(vm_uuid),
                                      col(BackupPoint.target) == job.target, col(BackupPoint.complete).is_(True))
    with session(runtime) as db:
        return list(db.exec(query).all())


def prune_points(runtime: Any, runner: Any, job: BackupJob, vm_uuid: str, now: datetime) -> list[int]:
    """Delete the job's points of one VM that its retention no longer keeps; their ids."""
    doomed = doomed_points(job_points(runtime, job, vm_uuid), RetentionPolicy.parse(job.retention), now)
    if not doomed:
        return []
    from bhype_backup.points import delete_point

    for point_id in doomed:
        delete_point(runtime, point_id, runner)
    return doomed
