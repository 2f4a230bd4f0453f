"""The two huey tasks behind the per-user task queue: run a started Task row, and nudge the
scheduler. The Task rows are the truth; these messages only carry ids."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from huey.api import TaskWrapper

    from bhype_core.tasks.transport import BhypeQueue

log = logging.getLogger("bhype.queue")

# Fixed pseudo-module, like bhype.task for the kinds: the API and the worker agree on the names.
SCHEDULED_MODULE = "bhype.scheduler"
EXECUTE = "execute"
NUDGE = "nudge"
# huey dequeues higher priorities first: a nudge must not wait behind the work it announces.
NUDGE_PRIORITY = 100
EXECUTE_PRIORITY = 50


def bind_scheduled(queue: BhypeQueue) -> dict[str, TaskWrapper]:
    """Register ``bhype.scheduler.execute`` and ``bhype.scheduler.nudge`` on ``queue.huey``."""

    def execute(task_id: str, token: str) -> None:
        # Runs in a worker thread of the process that consumes the queue.
        from bhype_core.tasks.executor import execute as run_row

        scheduler = queue.scheduler
        try:
            run_row(queue.require_runtime(), scheduler.identity, task_id, token)
        finally:
            _run_next(queue, scheduler)  # a slot and maybe locks are free: start the next task

    def nudge() -> None:
        # Only a process whose scheduler runs can act on it; elsewhere it is a no-op.
        scheduler = queue.running_scheduler
        if scheduler is not None:
            queue.nudge_taken()  # before the pass reads the queue: a later submission nudges again
            _run_next(queue, scheduler)

    wrappers = {}
    for name, function, priority in ((EXECUTE, execute, EXECUTE_PRIORITY), (NUDGE, nudge, NUDGE_PRIORITY)):
        function.__module__ = SCHEDULED_MODULE
        wrappers[name] = queue.huey.task(name=name, priority=priority)(function)
    return wrappers


def _next(scheduler: Any) -> tuple[str, str, Any] | None:
    """Start the next tasks from this worker thread and return the one it keeps to run; a
    failed pass is retried by the scheduler thread (it never fails the message that triggered it)."""
    try:
        return scheduler.dispatch_now()
    except Exception as exc:
        from bhype_core.tasks.outages import first_line, is_outage

        if is_outage(exc):  # the database or Redis is away: the scheduler thread logs the outage once
            log.info("pass after a task ended: %s; the scheduler thread retries", first_line(exc))
        else:
            log.exception("pass after a task ended failed; the scheduler thread retries")
        scheduler.wake()
        return None


def _run_next(queue: BhypeQueue, scheduler: Any) -> None:
    """Run, in this worker thread, the tasks its own passes claim for it, one after the other
    (a loop, not a recursion: a long queue never deepens the stack)."""
    from bhype_core.tasks.executor import execute as run_row

    stopping = getattr(queue.huey, "stopping", None)
    while not (stopping is not None and stopping.is_set()) and (mine := _next(scheduler)) is not None:
        task_id, token, row = mine
        try:
            run_row(queue.require_runtime(), scheduler.identity, task_id, token, picked_up=True, row=row)
        except Exception:
            # The row is the truth: it stays running under this worker until recovery (as when
            # a message's run fails); this thread goes on with the queue.
            log.exception("task %s failed outside its own error handling", task_id)


def send(queue: BhypeQueue, name: str, *args: Any) -> None:
    """Put one ``name`` message on the queue (raises what the storage raises)."""
    queue.huey.enqueue(queue.scheduled[name].s(*args))
    doorbell = getattr(queue.huey, "doorbell", None)
    if doorbell is not None:  # this process's idle worker threads (bhype serve) look now
        doorbell.ring()
