"""huey's consumer threads through a Redis restart: one log line per outage, not a traceback a second.

huey's own worker and schedule threads log every failed read of the queue with a traceback and
try again a second later, so a Redis restart of half a minute wrote dozens of tracebacks per
worker (issue 22). These subclasses do the same work and retry the same way, but log the outage
once through the queue's :class:`~bhype_core.tasks.outages.OutageLog`; an error that is not an
outage is still logged with its traceback. Messages lost with a Redis that kept nothing are
found again by recovery (:func:`bhype_core.tasks.recovery.requeue_lost`).
"""

from __future__ import annotations

import time
from typing import Any

from bhype_core.tasks.doorbell import WakeableWorker
from bhype_core.tasks.outages import OutageLog, is_outage
from bhype_core.tasks.periodic_slots import SlotClaimingScheduler


def queue_outage(huey: Any) -> OutageLog:
    """The outage log shared by every consumer thread of ``huey`` (made on first use)."""
    outage = getattr(huey, "outage", None)
    if outage is None:
        outage = huey.outage = OutageLog(f"task queue {huey.name}")
    return outage


class QuietWorker(WakeableWorker):
    """huey's worker thread (woken by the doorbell), logging a queue outage once."""

    def loop(self, now: Any = None) -> None:
        if self.doorbell is not None:
            self._seen = self.doorbell.rings  # before looking: a ring after this wakes the sleep
        outage = queue_outage(self.huey)
        try:
            task = self.huey.dequeue()
        except Exception as exc:
            if is_outage(exc):
                outage.failed(exc)
            else:
                self._logger.exception("Error reading from queue")
            self.sleep()
            return
        outage.ok()
        if task is None:
            if not self.huey.storage.blocking:
                self.sleep()
            return
        # As huey's Worker.loop: run the message. huey's own bookkeeping after it (deleting the
        # message's revoke key) may meet the outage too: the Task row already holds the outcome.
        self.delay = self.default_delay
        self.task_count += 1
        try:
            self.huey.execute(task, now)
        except Exception as exc:
            if is_outage(exc):
                outage.failed(exc)
            else:
                self._logger.exception("Unhandled error during execution of task %s.", task.id)


class QuietScheduler(SlotClaimingScheduler):
    """huey's schedule thread (periodic slots claimed once per group host), logging a queue
    outage once. bHype puts no delayed messages on the queue; the schedule is read anyway, as
    huey does, so a plugin's own ``eta`` message still runs."""

    def loop(self, now: Any = None) -> None:
        # As huey's Scheduler.loop, with quiet outages.
        current = self._next_loop
        self._next_loop += self.interval
        if self._next_loop < time.monotonic():
            self._next_loop = time.monotonic()  # a stall: skip this round rather than race
            return
        outage = queue_outage(self.huey)
        try:
            for task in self.huey.read_schedule(now):
                self.huey.enqueue(task)
        except Exception as exc:
            if is_outage(exc):
                outage.failed(exc)
            else:
                self._logger.exception("Error reading schedule.")
        else:
            outage.ok()
        if self.periodic and self._next_periodic <= time.monotonic():
            while self._next_periodic <= time.monotonic():  # skip checks missed during a stall
                self._next_periodic += self.periodic_task_seconds
            self.enqueue_periodic_tasks(now)
        self.sleep_for_interval(current, self.interval)
