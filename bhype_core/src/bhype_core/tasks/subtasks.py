"""Sub-tasks: a running task submits children and runs them in its own slot.

Design (issue 12): a child is an ordinary Task row (own log, progress, result; listed like any
task) owned by its parent's owner and linked by ``parent_id``. The scheduler never starts a
child; the parent's :meth:`TaskContext.wait` claims each child and runs it in the parent's
worker thread, one after the other. So a waiting parent never needs a second slot (no deadlock
on ``tasks.per_user_limit`` or on the worker threads, however deep the nesting), and running
children are not counted against the owner's limit. A child may take locks its ancestors hold
(a backup holding ``vm:web`` runs ``vm.stop`` on ``vm:web``); a lock held by any other task
makes the child wait. Cancelling the parent cancels the children; children the parent never
waited for are cancelled when it ends.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import TYPE_CHECKING, Any

from sqlalchemy import select, update
from sqlmodel import col

from bhype_core.db.models import utcnow
from bhype_core.db.task_models import FINAL_STATES, QUEUED, RUNNING, Task
from bhype_core.errors import ValidationErrors
from bhype_core.tasks import Cancelled, SubTask, SubTaskOutcome, store
from bhype_core.tasks.dispatch import STARTING, scheduling_transaction
from bhype_core.tasks.plan import waiting_for_lock

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from bhype_core.runtime import Runtime
    from bhype_core.tasks import TaskContext
    from bhype_core.tasks.store import WorkerIdentity

log = logging.getLogger("bhype.tasks")

POLL = 0.2  # seconds between looks while a child waits for a lock another task holds


def ancestors(engine: Engine, task: Task) -> set[str]:
    """``task``'s id and those of its parent, grandparent …"""
    found = {task.id}
    parent = task.parent_id
    while parent and parent not in found:
        found.add(parent)
        row = store.get_task(engine, parent)
        parent = row.parent_id if row is not None else None
    return found


def claim_child(engine: Engine, child_id: str, family: set[str], worker: WorkerIdentity) -> str | None:
    """Start the queued child ``child_id`` in the parent's slot if none of its locks is held
    outside ``family`` (its ancestors); its new dispatch token, or ``None`` (the child's
    progress message then says which lock it waits for)."""
    with scheduling_transaction(engine) as connection:
        row = connection.execute(
            select(col(Task.locks), col(Task.state)).where(col(Task.id) == child_id)
        ).first()
        if row is None or row.state != QUEUED:
            return None
        held = {
            lock: holder
            for holder, locks in connection.execute(
                select(col(Task.id), col(Task.locks)).where(col(Task.state) == RUNNING)
            )
            if holder not in family
            for lock in locks or ()
        }
        blocked = next((lock for lock in row.locks or () if lock in held), None)
        if blocked is not None:
            connection.execute(update(Task).where(col(Task.id) == child_id, col(Task.state) == QUEUED)
                               .values(progress_message=waiting_for_lock(blocked, held[blocked])))
            return None
        token = str(uuid.uuid4())
        claimed = connection.execute(
            update(Task).where(col(Task.id) == child_id, col(Task.state) == QUEUED)
            .values(state=RUNNING, started=utcnow(), picked_up=None, dispatch_token=token,
                    worker_id=worker.id, worker_host=worker.host, worker_pid=worker.pid,
                    progress_message=STARTING)
        ).rowcount
    return token if claimed == 1 else None


def is_remote(child: Task, parent: Task) -> bool:
    """Whether ``child`` runs on another group host than its parent (its host's scheduler
    starts it; the parent only follows it)."""
    return bool(child.host) and child.host != parent.host


def outcome_of(task: Task) -> SubTaskOutcome:
    """A child's outcome as the parent sees it."""
    return SubTaskOutcome(task.id, task.kind, task.state, task.result, task.error)


class SubTasks:
    """The sub-task runner of one running task (``TaskContext.subtasks``)."""

    def __init__(self, runtime: Runtime, worker: WorkerIdentity, parent: Task) -> None:
        self.runtime = runtime
        self.worker = worker
        self.parent = parent
        self.submitted = 0  # children submitted in this run (none: nothing to cancel at the end)

    def submit(self, kind: str, arguments: dict[str, Any], host: str | None = None) -> SubTask:
        """Queue a child of the parent, owned by the parent's owner, who must be allowed to
        submit ``kind`` (their role read from their groups now, as the worker does for the
        parent; ``@system`` only for kinds bHype submits itself).

        ``host``: another group host whose worker runs the child (a *remote* child: that
        host's scheduler starts it, the parent's locks do not block it, :meth:`wait` follows
        it through the shared database); default: run here, in the parent's slot."""
        from bhype_core.tasks.authz import owner_principal
        from bhype_core.tasks.service import submit

        principal = owner_principal(self.runtime, self.parent.owner)
        remote = host if host and host != self.parent.host else None
        task = submit(self.runtime, principal, kind, arguments, parent=self.parent.id, host=remote)
        self.submitted += 1
        where = f" on host {remote}" if remote else ""
        store.append_log(self.runtime.engine, self.parent.id, f"sub-task {kind} {task.id} queued{where}")
        return SubTask(task.id, kind)

    def wait(self, context: TaskContext, handles: list[SubTask], timeout: float | None) -> list[SubTaskOutcome]:
        """Run each child in turn in this thread; see the module docstring.

        :raises ValidationErrors: a handle is not a sub-task of this task.
        :raises Cancelled: this task was cancelled (its children are cancelled too).
        """
        from bhype_core.tasks.executor import execute

        engine = self.runtime.engine
        rows = [store.get_task(engine, handle.id) for handle in handles]
        errors = ValidationErrors()
        for index, row in enumerate(rows):
            if row is None or row.parent_id != self.parent.id:
                errors.add(f"handles.{index}", f"{handles[index].id} is not a sub-task of task {self.parent.id}")
        errors.raise_if_any()
        family = ancestors(engine, self.parent)
        deadline = None if timeout is None else time.monotonic() + timeout
        outcomes = []
        for handle in handles:
            while True:
                row = store.get_task(engine, handle.id)
                assert row is not None  # checked above; rows are never deleted while referenced
                if row.state in FINAL_STATES:
                    break
                context.check_cancelled()
                if row.state == QUEUED and not is_remote(row, self.parent):  # a remote child: its host runs it
                    token = claim_child(engine, row.id, family, self.worker)
                    if token is not None:
                        execute(self.runtime, self.worker, row.id, token)
                        continue
                if deadline is not None and time.monotonic() >= deadline:
                    break
                time.sleep(POLL)
            outcomes.append(outcome_of(row))
        # Read the flag itself (check_cancelled() reads it at most every few tenths of a
        # second): a child cancelled with its parent must not pass for a child that just ended.
        if store.is_cancel_requested(engine, self.parent.id):
            raise Cancelled(f"task {self.parent.id} was cancelled")
        return outcomes


def cancel_leftovers(runtime: Runtime, parent: Task) -> list[str]:
    """Cancel the children ``parent`` left queued when it ended (it never waited for them)."""
    engine = runtime.engine
    cancelled = []
    for child in store.children_of(engine, parent.id):
        message = f"cancelled: its parent task {parent.id} ended without running it"
        if child.state == QUEUED and store.cancel_queued(engine, child.id, message):
            store.append_log(engine, child.id, message, "warning")
            cancelled.append(child.id)
    return cancelled


def cancel_orphans(runtime: Runtime) -> list[str]:
    """Cancel queued children whose parent has ended (its worker died; recovery ended it)."""
    engine = runtime.engine
    with engine.connect() as connection:
        rows = connection.execute(
            select(col(Task.id), col(Task.parent_id)).where(col(Task.state) == QUEUED, col(Task.parent_id).is_not(None))
        ).all()
    cancelled = []
    for child_id, parent_id in rows:
        parent = store.get_task(engine, parent_id)
        if parent is not None and parent.state not in FINAL_STATES:
            continue
        message = f"cancelled: its parent task {parent_id} ended"
        if store.cancel_queued(engine, child_id, message):
            store.append_log(engine, child_id, message, "warning")
            cancelled.append(child_id)
    return cancelled
