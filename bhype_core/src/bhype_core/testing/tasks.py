"""Run queued Task rows in the test's own thread: scheduler passes and queue messages by hand,
so a test sees each task end before it asserts (no worker process, no sleeping)."""

from __future__ import annotations

from typing import Any

MAX_ROUNDS = 1000  # a task that keeps submitting tasks must not hang the test


def drain(runtime: Any) -> int:
    """Run every message waiting in ``runtime``'s huey queue in this thread; how many ran."""
    count = 0
    huey = runtime.queue.huey
    while (message := huey.dequeue()) is not None:
        huey.execute(message)
        count += 1
    return count


def run_queued(runtime: Any) -> list[str]:
    """Start and run, in this thread, every queued task that may start, until none is left
    that can (one blocked by a lock held outside stays queued); returns the ids started.

    Uses ``runtime.queue.scheduler`` (it takes this process's worker lease; release it with
    ``runtime.queue.scheduler.lease.release()`` when the test ends).
    """
    scheduler = runtime.queue.scheduler
    started: list[str] = []
    for _ in range(MAX_ROUNDS):
        now = scheduler.run_pass()
        started += now
        if not drain(runtime) and not now:
            return started
    raise AssertionError(f"tasks still starting after {MAX_ROUNDS} rounds")
