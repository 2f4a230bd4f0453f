"""Crash safety: tasks held by a worker that died are requeued (never begun) or interrupted."""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlmodel import col

from bhype_core.db.models import utcnow
from bhype_core.db.task_models import INTERRUPTED, QUEUED, RUNNING, Task
from bhype_core.events import Event
from bhype_core.tasks import liveness
from bhype_core.tasks.store import WorkerIdentity, append_log, get_task

if TYPE_CHECKING:
    from bhype_core.tasks.transport import BhypeQueue

log = logging.getLogger("bhype.tasks")

# Seconds a started task's queue message may take to reach a worker thread of its own worker
# before, when the queue no longer holds it, it counts as lost (a Redis restarted without
# persistence forgets its queue). A thread that took it meanwhile finds the claim given back
# and skips the message (the dispatch token no longer matches): the task still runs once.
LOST_AFTER = 10.0


@dataclass
class Recovery:
    """What a sweep did: tasks put back in the queue and tasks declared interrupted."""

    requeued: list[str] = field(default_factory=list)
    interrupted: list[Task] = field(default_factory=list)


def interrupted_event(task: Task) -> Event:
    """The ``task.interrupted`` event for ``task``, addressed to its owner."""
    return Event(
        kind="task.interrupted",
        message=f"task {task.kind} {task.id} was interrupted: its worker stopped while running it",
        severity="warning",
        subject=task.target or f"task:{task.id}",
        user=task.owner,
        data={"task_id": task.id, "kind": task.kind, "worker_host": task.worker_host,
              "worker_pid": task.worker_pid},
    )


def requeue_to_resume(engine: Engine, task_id: str, guard: list, worker_id: str | None) -> bool:
    """Put a resumable task whose worker stopped back in the queue, keeping its checkpoint: the
    next worker to start it resumes from there (``TaskContext.resume_state``)."""
    message = "queued again to resume: the worker running it stopped"
    append_log(engine, task_id, message, level="warning")
    statement = update(Task).where(*guard).values(
        state=QUEUED, started=None, picked_up=None, worker_id=None, worker_host=None, worker_pid=None,
        dispatch_token=None, progress_message=message,
    )
    with engine.begin() as connection:
        return connection.execute(statement).rowcount == 1


def recover(engine: Engine, directory: Path, me: WorkerIdentity, *, also_own: bool = False,
            resumable: Collection[str] = ()) -> Recovery:
    """Release every running task whose worker on this host is gone.

    A task started but never picked up by a worker thread goes back to the queue (nothing of it
    ran; a late queue message for it is stale and skipped). A task that was running becomes
    ``interrupted``: its slot and locks are free again and a log line says why.

    :param directory: the lease directory (:func:`liveness.lease_dir`).
    :param me: this worker; its own tasks are skipped unless ``also_own`` (it is stopping).
    :param resumable: task kinds that resume: their picked-up tasks are queued again
        (:func:`requeue_to_resume`) instead of interrupted.
    :returns: what was requeued and interrupted (the caller emits the events).
    """
    outcome = Recovery()
    with engine.connect() as connection:
        rows = connection.execute(
            select(col(Task.id), col(Task.worker_id), col(Task.worker_host), col(Task.picked_up),
                   col(Task.dispatch_token), col(Task.kind))
            .where(col(Task.state) == RUNNING)
        ).all()
    for task_id, worker_id, host, picked_up, token, kind in rows:
        if host not in (None, me.host):
            continue  # another machine's worker: its liveness is unknown here
        if worker_id == me.id and not also_own:
            continue
        if worker_id != me.id and liveness.is_alive(directory, worker_id or ""):
            continue
        guard = [col(Task.id) == task_id, col(Task.state) == RUNNING, col(Task.dispatch_token) == token]
        if picked_up is None:
            statement = update(Task).where(*guard, col(Task.picked_up).is_(None)).values(
                state=QUEUED, started=None, worker_id=None, worker_host=None, worker_pid=None,
                dispatch_token=None, progress_message="queued again: the worker that started it stopped",
            )
            with engine.begin() as connection:
                if connection.execute(statement).rowcount == 1:
                    outcome.requeued.append(task_id)
            continue
        if kind in resumable:
            if requeue_to_resume(engine, task_id, guard, worker_id):
                outcome.requeued.append(task_id)
            continue
        message = "interrupted: the worker running it stopped"
        # The line goes first: whoever sees the final state must also find the line (a live
        # stream ends at the final state). A dead worker cannot finish the task meanwhile.
        append_log(engine, task_id, message, level="error")
        statement = update(Task).where(*guard).values(
            state=INTERRUPTED, finished=utcnow(), progress_message=message,
            error={"code": "interrupted", "message": message, "detail": {"worker_id": worker_id}},
        )
        with engine.begin() as connection:
            if connection.execute(statement).rowcount != 1:
                continue
        task = get_task(engine, task_id)
        if task is not None:
            outcome.interrupted.append(task)
    if outcome.requeued or outcome.interrupted:
        log.warning("recovered tasks of stopped workers: %d requeued, %d interrupted",
                    len(outcome.requeued), len(outcome.interrupted))
    return outcome


def requeue_lost(engine: Engine, queue: BhypeQueue, me: WorkerIdentity, lost_after: float = LOST_AFTER) -> list[str]:
    """Queue again the tasks this worker started whose queue message is gone (issue 22).

    A task started by ``me`` (``running``, never picked up by a thread) for more than
    ``lost_after`` seconds whose dispatch token no message in ``queue`` carries lost its
    message: Redis restarted without persistence, or a thread took it and failed before
    picking the row up. Nothing of it ran, so it goes back to ``queued`` for the next pass.
    The queue is read before the rows: a claim made meanwhile is too young to count.

    :returns: the ids queued again (none when the queue cannot be read or cannot tell).
    """
    try:
        carried = queue.pending_starts()
    except Exception as exc:  # Redis still down: the next sweep looks again
        log.debug("cannot read the queue to look for lost messages: %s", exc)
        return []
    if carried is None:
        return []
    cutoff = utcnow() - timedelta(seconds=lost_after)
    with engine.connect() as connection:
        rows = connection.execute(
            select(col(Task.id), col(Task.dispatch_token))
            .where(col(Task.state) == RUNNING, col(Task.worker_id) == me.id, col(Task.picked_up).is_(None),
                   col(Task.started) <= cutoff)
        ).all()
    requeued = []
    message = "queued again: its queue message was lost (the queue server restarted?)"
    for task_id, token in rows:
        if token in carried:
            continue  # still waiting for a free thread
        statement = update(Task).where(
            col(Task.id) == task_id, col(Task.state) == RUNNING, col(Task.dispatch_token) == token,
            col(Task.picked_up).is_(None),
        ).values(state=QUEUED, started=None, dispatch_token=None, worker_id=None, worker_host=None, worker_pid=None,
                 progress_message=message)
        with engine.begin() as connection:
            if connection.execute(statement).rowcount != 1:
                continue
        requeued.append(task_id)
        append_log(engine, task_id, message, level="warning")
    if requeued:
        log.warning("queued again %d task(s) whose queue message was lost", len(requeued))
    return requeued
