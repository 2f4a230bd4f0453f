"""One scheduler pass in the database: read the queue, ask the planner, claim rows atomically."""

from __future__ import annotations

import uuid
from contextlib import AbstractContextManager
from datetime import datetime

from sqlalchemy import func, inspect, or_, select, update
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import aliased
from sqlmodel import col

from bhype_core.db.locks import exclusive_transaction
from bhype_core.db.models import utcnow
from bhype_core.db.task_models import QUEUED, RUNNING, Task
from bhype_core.tasks.plan import Limits, QueuedTask, RunningTask, plan
from bhype_core.tasks.store import WorkerIdentity

# A pass reads at most this many queue fronts (oldest first); others wait for a later pass.
MAX_QUEUED_PER_PASS = 5000
# Seconds a pass waits for another process's pass on MariaDB before giving up (it retries).
LOCK_TIMEOUT = 30
STARTING = "starting"


def tables_ready(engine: Engine) -> bool:
    """Whether ``bhype db upgrade`` has created the task tables."""
    return inspect(engine).has_table(Task.__tablename__)


def scheduling_transaction(engine: Engine) -> AbstractContextManager[Connection]:
    """A transaction no other scheduler pass (in any process) runs alongside.

    Two workers must not both count a user's running tasks, see a free slot and both start one.
    Row claims are conditional updates on top of that.
    """
    return exclusive_transaction(engine, "tasks", LOCK_TIMEOUT, "another scheduler pass")


# A task the scheduler starts: a top-level task, or a remote sub-task (issue 22: a running task
# of one group host asked another host to run it; its parent, elsewhere, only follows it). A
# local sub-task is run by its parent, in its slot (bhype_core.tasks.subtasks).
_PARENT = aliased(Task)
_SCHEDULED = or_(col(Task.parent_id).is_(None),
                 col(Task.host) != select(_PARENT.host).where(_PARENT.id == Task.parent_id).scalar_subquery())

# Built once: building a statement costs more than SQLite running it (issue 15). One statement
# answers both questions (one round trip on MariaDB).
_QUEUED_AND_RUNNING = select(
    select(col(Task.id)).where(col(Task.state) == QUEUED, _SCHEDULED).limit(1).scalar_subquery(),
    select(func.count()).select_from(Task)
    .where(col(Task.state) == RUNNING, col(Task.parent_id).is_(None)).scalar_subquery(),
)


def anything_queued(engine: Engine, total: int | None = None) -> bool:
    """Whether any task waits for the scheduler and, given the ``total`` number of slots, one
    is free (the pass after every task end and every nudge asks first: on MariaDB the pass's
    named lock and transaction cost round trips, and a burst of submissions sends a nudge each
    while every slot is taken, issue 15)."""
    with engine.connect() as connection:
        queued, running = connection.execute(_QUEUED_AND_RUNNING).one()
    return queued is not None and (total is None or (running or 0) < total)


def dispatch_pass(engine: Engine, limits: Limits, me: WorkerIdentity, run_here: bool = False,
                  kept: list[Task] | None = None) -> list[tuple[str, str]]:
    """Start whatever may start now: mark the rows running (claimed by ``me``, each with a new
    dispatch token) and record why the others wait.

    Only the front of each user's queue is read: no user can start more than
    ``min(per_user, total)`` tasks in one pass, and one more row tells why the rest waits, so
    a pass costs the same with 10 or 10,000 queued tasks. Rows further back keep saying
    "queued" until they move up.

    ``run_here``: the caller is a worker thread that runs the first task claimed itself: that
    row is marked picked up by the same UPDATE (one commit from queued to running; recovery
    then treats it as running, never as a claim to requeue). With ``kept``, that row, as the
    UPDATE left it, is appended to it: the worker thread runs it without reading it again.

    :returns: ``(task id, dispatch token)`` of each task claimed, in the order to run them;
        the caller hands each to a worker thread (or gives the claim back).
    """
    depth = min(limits.per_user, limits.total) + 1
    if not anything_queued(engine, limits.total):
        return []  # no lock, no transaction: a submission or a task's end looks again
    with scheduling_transaction(engine) as connection:
        rank = func.row_number().over(partition_by=col(Task.owner), order_by=(col(Task.created), col(Task.id)))
        # Every column: the row a worker thread keeps to run comes from this read (issue 15).
        front = (
            select(*Task.__table__.columns, rank.label("rank"))  # type: ignore[attr-defined]
            .where(col(Task.state) == QUEUED, _SCHEDULED)  # local children: run by their parent
            .where(col(Task.host).in_((me.host, "")))  # only this host's work (issue 22, bhype_core.hosts)
            .subquery()
        )
        queued_rows = connection.execute(
            select(*(column for column in front.c if column.name != "rank"))
            .where(front.c.rank <= depth)
            .order_by(front.c.created, front.c.id)
            .limit(MAX_QUEUED_PER_PASS)
        ).all()
        if not queued_rows:
            return []
        running = [
            # Locks are the group's: every running task holds its locks. Slots are per host: a
            # running sub-task runs in its parent's slot, another host's task in that host's.
            RunningTask(row.id, row.owner, tuple(row.locks or ()),
                        in_own_slot=row.parent_id is None and row.host in (me.host, ""))
            for row in connection.execute(
                select(col(Task.id), col(Task.owner), col(Task.locks), col(Task.parent_id), col(Task.host))
                .where(col(Task.state) == RUNNING)
            )
        ]
        owners = sorted({row.owner for row in queued_rows})
        last_served: dict[str, datetime | None] = {}
        if len(owners) > 1:  # who was served last only orders owners against each other
            last_served = dict(connection.execute(
                select(col(Task.owner), func.max(col(Task.started)))
                .where(col(Task.owner).in_(owners), col(Task.started).is_not(None))
                .group_by(col(Task.owner))
            ).all())
        queued = [QueuedTask(row.id, row.owner, tuple(row.locks or ()),
                             family=_ancestors(connection, row.parent_id) if row.parent_id else frozenset())
                  for row in queued_rows]
        decision = plan(queued, running, limits, last_served)

        claimed: list[tuple[str, str]] = []
        by_id = {row.id: row for row in queued_rows}
        for task_id in decision.start:
            token = str(uuid.uuid4())
            now = utcnow()
            values = dict(state=RUNNING, started=now, picked_up=now if run_here and not claimed else None,
                          dispatch_token=token, worker_id=me.id, worker_host=me.host, worker_pid=me.pid,
                          progress_message=STARTING)
            result = connection.execute(
                update(Task).where(col(Task.id) == task_id, col(Task.state) == QUEUED).values(**values)
            )
            if result.rowcount == 1:  # else cancelled meanwhile
                if run_here and not claimed and kept is not None:
                    # Read under the pass's lock: only a cancel request can change it meanwhile,
                    # and the task's reporter reads that flag from the row itself.
                    kept.append(Task(**{**by_id[task_id]._asdict(), **values}))
                claimed.append((task_id, token))
        current = {row.id: row.progress_message for row in queued_rows}
        for task_id, message in decision.waiting.items():
            if current.get(task_id) != message:
                connection.execute(
                    update(Task).where(col(Task.id) == task_id, col(Task.state) == QUEUED)
                    .values(progress_message=message)
                )
    return claimed


def _ancestors(connection: Connection, parent: str) -> frozenset[str]:
    """``parent`` and its own ancestors: a remote sub-task is not blocked by their locks."""
    found: set[str] = set()
    while parent and parent not in found:
        found.add(parent)
        parent = connection.execute(select(col(Task.parent_id)).where(col(Task.id) == parent)).scalar() or ""
    return frozenset(found)


def release_claim(engine: Engine, task_id: str, token: str) -> bool:
    """Give back a claim whose queue message could not be sent: the task is queued again."""
    statement = (
        update(Task)
        .where(col(Task.id) == task_id, col(Task.state) == RUNNING, col(Task.dispatch_token) == token,
               col(Task.picked_up).is_(None))
        .values(state=QUEUED, started=None, dispatch_token=None, worker_id=None, worker_host=None,
                worker_pid=None, progress_message="queued again: the queue refused it")
    )
    with engine.begin() as connection:
        return connection.execute(statement).rowcount == 1
