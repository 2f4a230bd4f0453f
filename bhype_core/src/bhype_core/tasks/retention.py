"""How long the system's own finished tasks are kept: every minute's periodic runs would
otherwise grow ``core_task`` by thousands of rows a day. Users' tasks are never pruned here."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.engine import Engine
from sqlmodel import col

from bhype_core.db.models import utcnow
from bhype_core.db.task_models import SUCCEEDED, Task, TaskLog
from bhype_core.tasks.system import SYSTEM_OWNER

BATCH = 500  # rows per delete, so a long backlog never holds the database in one transaction


def prune_system_tasks(engine: Engine, keep_days: float) -> int:
    """Delete ``@system`` tasks that succeeded more than ``keep_days`` ago, with their logs
    (failed, cancelled and interrupted ones stay for whoever looks into them); how many went.

    A child is pruned with the rest of its kind: children of ``@system`` tasks are ``@system``'s.
    """
    cutoff = utcnow() - timedelta(days=keep_days)
    removed = 0
    while True:
        with engine.begin() as connection:
            ids = list(connection.execute(
                select(col(Task.id)).where(col(Task.owner) == SYSTEM_OWNER, col(Task.state) == SUCCEEDED,
                                           col(Task.finished) < cutoff).limit(BATCH)
            ).scalars())
            if not ids:
                return removed
            connection.execute(delete(TaskLog).where(col(TaskLog.task_id).in_(ids)))
            connection.execute(delete(Task).where(col(Task.id).in_(ids)))
        removed += len(ids)
