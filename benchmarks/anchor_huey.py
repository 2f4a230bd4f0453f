"""The anchor of ``bench_tasks``: bare huey on the same storage as bHype's queue, a consumer
in its own process with bHype's polling settings and thread count, running a trivial task.

``python anchor_huey.py consume STORAGE`` runs the consumer; :func:`make_huey` and :func:`ping`
are imported by the benchmark to enqueue. ``STORAGE`` is ``sqlite:PATH`` or ``redis:URL``.
"""

from __future__ import annotations

import sys
import time

from huey import RedisHuey, SqliteHuey
from huey.consumer import Consumer

from bhype_core.tasks.worker import BACKOFF, INITIAL_DELAY, MAX_DELAY


def make_huey(storage: str):
    kind, _, where = storage.partition(":")
    if kind == "sqlite":
        huey = SqliteHuey("anchor", filename=where)
    else:
        huey = RedisHuey(f"anchor-{time.time_ns()}" if not where else "anchor-bench", url=where, blocking=True,
                         read_timeout=1)
    global ping

    @huey.task(name="ping")
    def ping(submitted: float) -> list[float]:
        return [submitted, time.time()]

    return huey, ping


def main(storage: str) -> None:
    huey, _ = make_huey(storage)
    Consumer(huey, workers=2, worker_type="thread", initial_delay=INITIAL_DELAY, backoff=BACKOFF,
             max_delay=MAX_DELAY, periodic=False).run()


if __name__ == "__main__":
    import anchor_huey  # the task's registered name carries its module: not __main__

    anchor_huey.main(sys.argv[2])
