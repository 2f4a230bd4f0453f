"""Waking this process's idle huey worker threads when a message was just put on the queue.

huey's threads poll a storage that cannot block (SQLite) and back off to ``MAX_DELAY`` when
idle, so on the embedded queue a task started by an idle ``bhype serve`` waited up to a second
(issue 15). The scheduler puts each started task on the queue from this same process, so it
rings the :class:`Doorbell` right after; :class:`WakeableWorker` sleeps on the bell instead of
the plain timer. Polling stays as the fallback for messages from other processes.
"""

from __future__ import annotations

import threading
from typing import Any

from huey.consumer import Worker


class Doorbell:
    """A counter of rings that sleepers wait on: a ring between a thread's look at the queue
    and its sleep is never lost (the thread compares the count it saw before looking)."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._rings = 0

    @property
    def rings(self) -> int:
        """How many times the bell rang so far (read before looking at the queue)."""
        return self._rings

    def ring(self) -> None:
        """Wake every thread sleeping on the bell."""
        with self._condition:
            self._rings += 1
            self._condition.notify_all()

    def wait(self, seen: int, timeout: float) -> bool:
        """Sleep up to ``timeout`` seconds unless the bell rang since the count ``seen``;
        returns whether it rang."""
        with self._condition:
            if self._rings == seen:
                self._condition.wait(timeout)
            return self._rings != seen


class WakeableWorker(Worker):
    """huey's worker thread, sleeping between polls on the huey instance's ``doorbell``."""

    def __init__(self, huey: Any, *args: Any, **kwargs: Any) -> None:
        super().__init__(huey, *args, **kwargs)
        self.doorbell: Doorbell | None = getattr(huey, "doorbell", None)
        self._seen = 0

    def loop(self, now: Any = None) -> None:
        if self.doorbell is not None:
            self._seen = self.doorbell.rings  # before looking: a ring after this wakes the sleep
        super().loop(now)

    def sleep(self) -> None:
        if self.doorbell is None:
            super().sleep()
            return
        self.delay = min(self.delay, self.max_delay)
        if self.stop_flag.is_set():
            return
        if self.doorbell.wait(self._seen, self.delay):
            self.delay = self.default_delay  # woken by work: poll quickly again
        else:
            self.delay *= self.backoff
