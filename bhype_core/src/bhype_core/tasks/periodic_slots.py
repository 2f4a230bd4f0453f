"""One run per schedule slot, however many workers consume the queue.

huey's consumer has a scheduler thread that wakes once a minute; here it submits a Task row
(owned by ``@system``, :mod:`bhype_core.tasks.periodic`) for every periodic job whose
crontab matches the current minute. Two worker processes on one queue (two ``bhype worker``
services on a Redis queue, or a worker beside ``bhype serve``'s in-process one) would each
submit it: a scheduled snapshot taken twice, a prune run twice. Here each worker first claims
the slot — the job's name and the minute it is due — with the queue storage's atomic
``put_if_empty`` (Redis ``HSETNX``; SQLite ``INSERT OR ABORT``); only the worker that wins the
claim submits the run.

A claim is kept long enough for every other worker's scheduler to have checked the same minute
(they check once a minute), then its owner deletes it, so the store does not grow.
"""

from __future__ import annotations

import datetime
import logging
import time
from collections import deque
from typing import Any

from huey.consumer import Scheduler

from bhype_core.tasks.periodic import due_jobs, submit_run

log = logging.getLogger("bhype.worker")

CLAIM_PREFIX = "bhype:periodic-slot:"
# Other workers check each minute once, up to a minute apart; ten minutes leaves room for a
# scheduler thread that stalled for a while (its late check finds the claim and skips).
CLAIM_KEEP_SECONDS = 600.0


def slot_key(job_name: str, due: datetime.datetime) -> str:
    """The storage key claiming the run of ``job_name`` due in the minute of ``due``."""
    return f"{CLAIM_PREFIX}{job_name}:{due:%Y-%m-%dT%H:%M}"


class SlotClaimingScheduler(Scheduler):
    """huey's scheduler thread, submitting a periodic run only when this worker claimed its slot."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._claims: deque[tuple[float, str]] = deque()  # (monotonic time, key) of our claims

    def enqueue_periodic_tasks(self, now: datetime.datetime | None) -> None:
        due_at = now if now is not None else self.huey._get_timestamp()
        self.forget_old_claims()
        runtime = self.huey.queue.require_runtime()
        for job in due_jobs(runtime, due_at):
            key = slot_key(job.name, due_at)
            try:
                claimed = self.huey.storage.put_if_empty(key, b"1")
            except Exception:
                log.exception("periodic job %s: cannot claim its %s run; skipped", job.name, f"{due_at:%H:%M}")
                continue
            if not claimed:
                log.info("periodic job %s: the %s run was queued by another worker", job.name, f"{due_at:%H:%M}")
                continue
            log.info("periodic job %s: queueing its %s run", job.name, f"{due_at:%H:%M}")
            try:
                submit_run(runtime, job, f"the {due_at:%H:%M} run")
            except Exception:
                log.exception("periodic job %s: queueing its %s run failed", job.name, f"{due_at:%H:%M}")
                self._give_up(key)  # another worker checking this minute may still queue it
                continue
            self._claims.append((time.monotonic(), key))

    def _give_up(self, key: str) -> None:
        try:
            self.huey.storage.delete_data(key)
        except Exception:
            log.warning("periodic slot claim %s could not be given up", key, exc_info=True)

    def forget_old_claims(self, keep: float = CLAIM_KEEP_SECONDS) -> None:
        """Delete this worker's claims older than ``keep`` seconds from the store."""
        cutoff = time.monotonic() - keep
        while self._claims and self._claims[0][0] <= cutoff:
            _, key = self._claims.popleft()
            try:
                self.huey.storage.delete_data(key)
            except Exception:
                log.warning("periodic slot claim %s could not be deleted", key, exc_info=True)
