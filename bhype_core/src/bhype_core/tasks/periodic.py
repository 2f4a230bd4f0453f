"""Periodic jobs as Task rows: which jobs are due, and submitting one run as ``@system``.

A due run is an ordinary Task row of the job's kind (its locks, log and progress; visible in
the task list). A run of the same job that is still queued or running makes the new one skip,
so a slow run is never joined by the next (and a lock held elsewhere never piles runs up).
Which worker submits a given minute's run is decided by :mod:`bhype_core.tasks.periodic_slots`.
"""

from __future__ import annotations

import datetime
import logging
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlmodel import Session, col

from bhype_core.db.task_models import QUEUED, RUNNING, Task
from bhype_core.hosts.settings import local_host_name
from bhype_core.tasks.system import SYSTEM_OWNER, submit_as_system

if TYPE_CHECKING:
    from bhype_core.registry import PeriodicJob
    from bhype_core.runtime import Runtime

log = logging.getLogger("bhype.worker")


def due_jobs(runtime: Runtime, at: datetime.datetime) -> list[PeriodicJob]:
    """The periodic jobs whose schedule matches the minute of ``at`` (host local time)."""
    schedules = runtime.queue.periodic
    return [job for job in runtime.registry.periodic_jobs if schedules[job.name](at)]


def active_run(runtime: Runtime, job: PeriodicJob) -> Task | None:
    """This host's run of the job that is still queued or running, if any (same kind and
    arguments, owned by ``@system``, for this group host: each host runs its periodic jobs
    for itself, so another host's queued run never makes this one skip, issue 22)."""
    host = local_host_name(runtime)
    query = select(Task).where(col(Task.owner) == SYSTEM_OWNER, col(Task.kind) == job.kind,
                               col(Task.state).in_((QUEUED, RUNNING)), col(Task.parent_id).is_(None),
                               col(Task.host).in_((host, "")))
    with Session(runtime.engine, expire_on_commit=False) as session:
        rows = list(session.scalars(query))
    return next((row for row in rows if row.arguments == dict(job.arguments)), None)


def submit_run(runtime: Runtime, job: PeriodicJob, why: str) -> Task | None:
    """Submit one run of ``job`` as ``@system``; ``None`` (with a warning) when its previous
    run is still queued or running.

    :param why: for the log (``the 10:30 run``, ``the run at start``).
    """
    previous = active_run(runtime, job)
    if previous is not None:
        log.warning("periodic job %s: %s skipped: its previous run (task %s) is still %s",
                    job.name, why, previous.id, previous.state)
        return None
    task = submit_as_system(runtime, job.kind, dict(job.arguments))
    log.info("periodic job %s: %s is task %s", job.name, why, task.id)
    return task
