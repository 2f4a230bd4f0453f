"""Crash safety: tasks held by a worker that died are requeued (never begun) or interrupted."""

from __future__ import annotations

import logging
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.engine import Engine
from sqlmodel import col

from bhype_core.db.models import utcnow
from bhype_core.db.task_models import INTERRUPTED, QUEUED, RUNNING, Task
from bhype_core.events import Event
from bhype_core.tasks import liveness
from bhype_core.tasks.store import WorkerIdentity, append_log, get_task

log = logging.getLogger("bhype.tasks")


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
