"""Run the same work in several threads at once, for tests of what two processes do together."""

from __future__ import annotations

import threading
from collections.abc import Callable


def run_together(work: Callable[[int], None], count: int = 2, timeout: float = 120.0) -> list[str]:
    """Call ``work(0)`` … ``work(count - 1)`` in ``count`` threads released together by a barrier.

    :returns: the first line of every exception a thread raised (empty when all went well), so a
        test can ``assert run_together(...) == []`` and see what went wrong.
    :raises AssertionError: a thread was still running after ``timeout`` seconds.
    """
    barrier = threading.Barrier(count)
    errors: list[str] = []

    def run(n: int) -> None:
        try:
            barrier.wait(timeout=30)
            work(n)
        except BaseException as exc:  # reported to the test, not lost in the thread
            errors.append((str(exc).splitlines() or [type(exc).__name__])[0])

    threads = [threading.Thread(target=run, args=(n,), name=f"together-{n}") for n in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=timeout)
    stuck = [thread.name for thread in threads if thread.is_alive()]
    assert not stuck, f"still running after {timeout} s: {stuck}"
    return errors
