"""Task rows and log lines in the database: every read and every guarded state change.

State changes are single ``UPDATE … WHERE`` statements that name the state (and, for a started
task, its dispatch token) they expect, and report whether they matched: two processes racing
for the same row can never both win.
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col

from bhype_core.db.intent_models import TaskIntent
from bhype_core.db.models import utcnow
from bhype_core.db.task_models import (
    CANCELLED,
    MESSAGE_LENGTH,
    QUEUED,
    RUNNING,
    Task,
    TaskLog,
)

LOG_INSERT_ATTEMPTS = 5  # should two writers ever compute the same next seq, the loser tries again


@dataclass(frozen=True)
class WorkerIdentity:
    """A worker process instance: a unique ``id`` per start, its ``host`` and ``pid``."""

    id: str
    host: str
    pid: int


def new_task(
    *, owner: str, kind: str, arguments: dict[str, Any], locks: Sequence[str], retry_of: str | None = None,
    parent_id: str | None = None,
) -> Task:
    """A queued Task row (not yet stored); its target is its first lock (``vm:3``), if any."""
    return Task(
        id=str(uuid.uuid4()),
        owner=owner,
        kind=kind,
        target=locks[0] if locks else "",
        arguments=dict(arguments),
        locks=list(locks),
        state=QUEUED,
        progress_message="queued",
        retry_of=retry_of,
        parent_id=parent_id,
    )


def insert_task(engine: Engine, task: Task) -> Task:
    """Store a new Task row; returns it (readable after the commit)."""
    with Session(engine, expire_on_commit=False) as session:
        session.add(task)
        session.commit()
    return task


def get_task(engine: Engine, task_id: str) -> Task | None:
    """The Task row ``task_id``, or ``None``."""
    with Session(engine, expire_on_commit=False) as session:
        return session.get(Task, task_id)


def list_tasks(
    engine: Engine,
    *,
    owner: str | None = None,
    state: str | None = None,
    kind: str | None = None,
    limit: int = 100,
    offset: int = 0,
) -> list[Task]:
    """Tasks, newest first, optionally of one owner, state and kind."""
    query = select(Task).order_by(col(Task.created).desc(), col(Task.id).desc())
    if owner is not None:
        query = query.where(col(Task.owner) == owner)
    if state is not None:
        query = query.where(col(Task.state) == state)
    if kind is not None:
        query = query.where(col(Task.kind) == kind)
    with Session(engine, expire_on_commit=False) as session:
        return list(session.scalars(query.limit(limit).offset(offset)))


def read_log(engine: Engine, task_id: str, after: int = 0, limit: int | None = None) -> list[TaskLog]:
    """Log lines of ``task_id`` with ``seq > after``, oldest first."""
    query = select(TaskLog).where(col(TaskLog.task_id) == task_id, col(TaskLog.seq) > after)
    query = query.order_by(col(TaskLog.seq))
    if limit is not None:
        query = query.limit(limit)
    with Session(engine, expire_on_commit=False) as session:
        return list(session.scalars(query))


def append_log(
    engine: Engine, task_id: str, message: str, level: str = "info", time: datetime | None = None,
    *, after: int | None = None,
) -> int:
    """Append one line to ``task_id``'s log; its ``seq`` is one more than the last line's.
    Returns the ``seq`` written.

    With ``after`` (the last ``seq`` this writer knows of, e.g. a task's reporter counting its
    own lines) the line is one plain INSERT of ``after + 1``: one statement and one commit. The
    unique key (task_id, seq) refuses it when another writer came in between (a cancel line from
    the API), and the line then takes the locked path.

    The locked path serialises writers on the task's row (``SELECT … FOR UPDATE``; on SQLite
    the transaction takes the write lock up front), so two of them never read the same last
    ``seq``; the unique key is the backstop.
    """
    table = TaskLog.__table__  # type: ignore[attr-defined]
    values = {"task_id": task_id, "time": time or utcnow(), "level": level, "message": message}
    if after is not None:
        try:
            with engine.begin() as connection:
                connection.execute(insert(table).values(seq=after + 1, **values))
            return after + 1
        except IntegrityError:
            pass  # someone else wrote a line meanwhile: find the end under the lock
    for attempt in range(LOG_INSERT_ATTEMPTS):
        try:
            with engine.connect() as connection:
                connection.execution_options(sqlite_begin="BEGIN IMMEDIATE")
                with connection.begin():
                    connection.execute(select(col(Task.id)).where(col(Task.id) == task_id).with_for_update())
                    last = connection.execute(
                        select(func.coalesce(func.max(table.c.seq), 0)).where(table.c.task_id == task_id)
                    ).scalar()
                    seq = int(last or 0) + 1
                    connection.execute(insert(table).values(seq=seq, **values))
            return seq
        except IntegrityError:
            if attempt == LOG_INSERT_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")  # the loop returns or raises


def last_log_seq(engine: Engine, task_id: str) -> int:
    """The ``seq`` of ``task_id``'s last log line (0 without any)."""
    table = TaskLog.__table__  # type: ignore[attr-defined]
    with engine.connect() as connection:
        value = connection.execute(
            select(func.coalesce(func.max(table.c.seq), 0)).where(table.c.task_id == task_id)).scalar()
    return int(value or 0)


def set_progress(engine: Engine, task_id: str, token: str | None, percent: float, message: str) -> bool:
    """Record a running task's progress; false when the task no longer runs under ``token``."""
    statement = (
        update(Task)
        .where(col(Task.id) == task_id, col(Task.state) == RUNNING, col(Task.dispatch_token) == token)
        .values(progress=percent, progress_message=message[:MESSAGE_LENGTH])
    )
    with engine.begin() as connection:
        return connection.execute(statement).rowcount == 1


def is_cancel_requested(engine: Engine, task_id: str) -> bool:
    """Whether someone asked to cancel ``task_id``."""
    with engine.connect() as connection:
        value = connection.execute(select(col(Task.cancel_requested)).where(col(Task.id) == task_id)).scalar()
    return bool(value)


def cancel_queued(engine: Engine, task_id: str, message: str) -> bool:
    """Cancel ``task_id`` if it is still queued (it then never starts); false otherwise."""
    now = utcnow()
    statement = (
        update(Task)
        .where(col(Task.id) == task_id, col(Task.state) == QUEUED)
        .values(
            state=CANCELLED, finished=now, cancel_requested=True, progress_message=message[:MESSAGE_LENGTH],
            error={"code": "cancelled", "message": message, "detail": {}},
        )
    )
    with engine.begin() as connection:
        return connection.execute(statement).rowcount == 1


def request_cancel(engine: Engine, task_id: str, message: str | None = None, level: str = "warning") -> bool:
    """Ask the running task ``task_id`` to stop at its next safe point; false if not running.

    ``message`` is logged in the same transaction as the request, so it always comes before
    the line the task writes when it honours the request (the task cannot see the flag earlier).
    """
    statement = (
        update(Task).where(col(Task.id) == task_id, col(Task.state) == RUNNING).values(cancel_requested=True)
    )
    if message is None:
        with engine.begin() as connection:
            return connection.execute(statement).rowcount == 1
    table = TaskLog.__table__  # type: ignore[attr-defined]
    for attempt in range(LOG_INSERT_ATTEMPTS):
        try:
            with engine.connect() as connection:
                connection.execution_options(sqlite_begin="BEGIN IMMEDIATE")
                with connection.begin():
                    # The UPDATE locks the task's row, which serialises this line with the other
                    # locked writers of append_log; the unique key catches a fast-path insert.
                    if connection.execute(statement).rowcount != 1:
                        return False
                    last = connection.execute(
                        select(func.coalesce(func.max(table.c.seq), 0)).where(table.c.task_id == task_id)
                    ).scalar()
                    connection.execute(insert(table).values(
                        task_id=task_id, seq=int(last or 0) + 1, time=utcnow(), level=level, message=message))
            return True
        except IntegrityError:
            if attempt == LOG_INSERT_ATTEMPTS - 1:
                raise
    raise AssertionError("unreachable")  # the loop returns or raises


def pick_up(engine: Engine, task_id: str, token: str, worker: WorkerIdentity) -> Task | None:
    """Mark a started task as running in ``worker``'s thread; ``None`` when the message is stale
    (the task was requeued, finished, or already picked up under this token)."""
    statement = (
        update(Task)
        .where(
            col(Task.id) == task_id,
            col(Task.state) == RUNNING,
            col(Task.dispatch_token) == token,
            col(Task.picked_up).is_(None),
        )
        .values(picked_up=utcnow(), worker_id=worker.id, worker_host=worker.host, worker_pid=worker.pid)
    )
    # One transaction for the claim and the read: the row read is the one just claimed.
    with Session(engine, expire_on_commit=False) as session:
        if session.execute(statement).rowcount != 1:  # type: ignore[attr-defined]
            session.rollback()
            return None
        task = session.get(Task, task_id)
        session.commit()
    return task


def get_picked_up(engine: Engine, task_id: str, token: str) -> Task | None:
    """The row of a task this thread claimed and picked up in one statement (the dispatch pass
    run by a worker thread, :func:`bhype_core.tasks.dispatch.dispatch_pass` ``run_here``);
    ``None`` when it no longer runs under ``token``."""
    with Session(engine, expire_on_commit=False) as session:
        task = session.get(Task, task_id)
    if task is None or task.state != RUNNING or task.dispatch_token != token:
        return None
    return task


def finish(
    engine: Engine,
    task_id: str,
    token: str | None,
    state: str,
    *,
    result: Any = None,
    error: dict[str, Any] | None = None,
    message: str = "",
    progress: float | None = None,
    forget_intents: bool = False,
) -> bool:
    """End a running task in the final ``state``; false when it no longer runs under ``token``
    (recovery already declared it interrupted). With ``forget_intents`` its undo journal is
    dropped in the same transaction (one commit: the task ended on its own and handled its
    undo; a journal must never outlive the row saying so, nor go before it)."""
    values: dict[str, Any] = {
        "state": state, "finished": utcnow(), "result": result, "error": error,
        "progress_message": message[:MESSAGE_LENGTH],
    }
    if progress is not None:
        values["progress"] = progress
    statement = (
        update(Task)
        .where(col(Task.id) == task_id, col(Task.state) == RUNNING, col(Task.dispatch_token) == token)
        .values(**values)
    )
    with engine.begin() as connection:
        ended = connection.execute(statement).rowcount == 1
        if ended and forget_intents:
            connection.execute(delete(TaskIntent).where(col(TaskIntent.task_id) == task_id))
        return ended


def save_checkpoint(engine: Engine, task_id: str, token: str | None, checkpoint: dict[str, Any]) -> bool:
    """Store a running task's checkpoint; false when it no longer runs under ``token``."""
    statement = (
        update(Task)
        .where(col(Task.id) == task_id, col(Task.state) == RUNNING, col(Task.dispatch_token) == token)
        .values(checkpoint=checkpoint)
    )
    with engine.begin() as connection:
        return connection.execute(statement).rowcount == 1


def children_of(engine: Engine, task_id: str) -> list[Task]:
    """The sub-tasks ``task_id`` submitted, oldest first."""
    query = select(Task).where(col(Task.parent_id) == task_id).order_by(col(Task.created), col(Task.id))
    with Session(engine, expire_on_commit=False) as session:
        return list(session.scalars(query))
