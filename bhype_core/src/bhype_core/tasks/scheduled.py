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
            _next(scheduler)  # a slot and maybe locks are free: start the next task

    def nudge() -> None:
        # Only a process whose scheduler runs can act on it; elsewhere it is a no-op.
        scheduler = queue.running_scheduler
        if scheduler is not None:
            _next(scheduler)

    wrappers = {}
    for name, function, priority in ((EXECUTE, execute, EXECUTE_PRIORITY), (NUDGE, nudge, NUDGE_PRIORITY)):
        function.__module__ = SCHEDULED_MODULE
        wrappers[name] = queue.huey.task(name=name, priority=priority)(function)
    return wrappers


def _next(scheduler: Any) -> None:
    """Start the next tasks from this worker thread; a failed pass is retried by the scheduler
    thread (it never fails the message that triggered it)."""
    try:
        scheduler.dispatch_now()
    except Exception:
        log.exception("pass after a task ended failed; the scheduler thread retries")
        scheduler.wake()


def send(queue: BhypeQueue, name: str, *args: Any) -> None:
    """Put one ``name`` message on the queue (raises what the storage raises)."""
    queue.huey.enqueue(queue.scheduled[name].s(*args))
    doorbell = getattr(queue.huey, "doorbell", None)
    if doorbell is not None:  # this process's idle worker threads (bhype serve) look now
        doorbell.ring()
