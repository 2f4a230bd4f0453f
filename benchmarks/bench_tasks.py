"""Per-user task queue: submit→running latency, trivial-task throughput, fairness delay.

Run: ``./dev bench tasks`` or ``.venv/bin/python benchmarks/bench_tasks.py [-n N] [--tasks N]``.
Each case starts a real ``python -m bhype_core.tasks.worker`` (2 worker threads) on the embedded
SQLite queue with a SQLite database, and on Redis with a MariaDB database (skipped, with a
note, when either server is unreachable). Times come from the Task rows (``created``,
``started`` = the scheduler claimed it, ``picked_up`` = a worker thread began running it).
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from report import print_table, summary_ms

import bhype_core.builtins.models as core_models
import bhype_core.builtins.tasks as core_tasks
from bhype_core.db.migrate import upgrade
from bhype_core.db.models import utcnow
from bhype_core.db.task_models import FINAL_STATES
from bhype_core.plugins import make_plugin_manager
from bhype_core.runtime import build_runtime
from bhype_core.tasks import service, store
from bhype_core.testing.database import MariaDBDatabases, mariadb_server_url
from bhype_core.testing.queue import (
    WorkerProcess,
    delete_keys,
    queue_config,
    redis_server_url,
    settings_from,
    write_config,
)

WAIT = 300.0


def wait_for(condition: Callable[[], Any], what: str, timeout: float = WAIT, step: float = 0.005) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise TimeoutError(f"timed out waiting for {what}")


def other_plugins() -> list[str]:
    """Installed plugins that are not the core's built-ins: the benchmark measures the core."""
    return sorted({ep.name for ep in metadata.entry_points(group="bhype") if not ep.name.startswith("core_")})


@contextmanager
def backend(name: str, directory: Path) -> Iterator[tuple[Any, WorkerProcess]]:
    """A migrated client runtime and a running worker process for ``sqlite`` or ``redis``."""
    cleanup: list[Callable[[], Any]] = []
    if name == "redis":
        prefix = f"bhype_bench_{secrets.token_hex(4)}"
        raw = queue_config(directory / "data", "redis", redis_url=redis_server_url(), name=prefix)
        databases = MariaDBDatabases(mariadb_server_url())
        raw["core"]["database_url"] = databases.create()
        cleanup += [databases.drop_all, lambda: delete_keys(redis_server_url(), prefix)]
    else:
        raw = queue_config(directory / "data", "sqlite")
    raw["queue"]["workers"] = 2
    raw["tasks"] = {"per_user_limit": 2}
    raw["core"]["disabled_plugins"] = other_plugins()
    plugins = [("core_models", core_models), ("core_tasks", core_tasks)]
    runtime = build_runtime(settings_from(raw), make_plugin_manager(load_entrypoints=False, plugins=plugins))
    upgrade(runtime)
    worker = WorkerProcess(write_config(directory / f"{name}.toml", raw), directory / f"{name}.log")
    try:
        worker.start().wait_ready()
        yield runtime, worker
    finally:
        worker.stop()
        runtime.engine.dispose()
        for step in reversed(cleanup):
            step()


def latency(runtime: Any, count: int) -> tuple[list[float], list[float]]:
    """One task at a time on an idle queue: (created→started, created→picked_up) seconds."""
    started, picked = [], []
    for n in range(count):
        task = service.submit(runtime, "alice", "core.ping", {"echo": n})
        done = wait_for(lambda task_id=task.id: _ended(runtime, task_id), "a ping")
        started.append((done.started - done.created).total_seconds())
        picked.append((done.picked_up - done.created).total_seconds())
    return started, picked


def _ended(runtime: Any, task_id: str) -> Any:
    task = store.get_task(runtime.engine, task_id)
    return task if task is not None and task.state in FINAL_STATES else None


def throughput(runtime: Any, count: int) -> float:
    """Trivial tasks per second from the first submission to the last finish (4 users)."""
    tasks = [service.submit(runtime, f"user{n % 4}", "core.ping", {}) for n in range(count)]
    last = tasks[-1]
    wait_for(lambda: all(_ended(runtime, t.id) for t in (last, tasks[len(tasks) // 2])), "the batch", step=0.05)
    rows = [wait_for(lambda t=t: _ended(runtime, t.id), "a task") for t in tasks]
    span = max(r.finished for r in rows) - min(r.created for r in rows)
    return count / span.total_seconds()


def fairness(runtime: Any, queued: int, sleep: float) -> dict[str, str]:
    """User A queues ``queued`` tasks of ``sleep`` s; once both slots run A's tasks, B submits one.
    Returns B's start delay and how many of A's tasks started before it."""
    alice = [service.submit(runtime, "alice", "core.ping", {"sleep": sleep}) for _ in range(queued)]
    wait_for(lambda: store.get_task(runtime.engine, alice[1].id).started is not None, "alice using the slots")
    bob = service.submit(runtime, "bob", "core.ping", {})
    visible = utcnow()  # committed: every pass from now on sees bob's task
    bob_row = wait_for(lambda: _ended(runtime, bob.id), "bob's task", step=0.01)
    overtaking = 0
    for task in alice:
        row = store.get_task(runtime.engine, task.id)
        if row.started is not None and visible < row.started < bob_row.started:
            overtaking += 1
    for task in alice:  # cancel the rest so the next case starts from an empty queue
        try:
            service.cancel(runtime, _admin(), task.id)
        except Exception:  # already ended
            pass
    wait_for(lambda: all(_ended(runtime, t.id) for t in alice), "alice's tasks to end", step=0.05)
    delay = (bob_row.started - bob_row.created).total_seconds()
    return {
        "A queued": str(queued),
        "A task s": f"{sleep:g}",
        "B start delay ms": f"{delay * 1000:.1f}",
        "A tasks started after B was queued, before B": str(overtaking),
    }


def _admin() -> Any:
    from bhype_core.api.principal import Principal

    return Principal("bench", "admin")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=100, help="latency samples per backend (default 100)")
    parser.add_argument("--tasks", type=int, default=500, help="tasks in the throughput batch (default 500)")
    parser.add_argument("--queued", type=int, default=100, help="user A's queue in the fairness case")
    parser.add_argument("--backends", default="sqlite,redis", help="comma-separated: sqlite, redis")
    args = parser.parse_args(argv)

    latency_rows, throughput_rows, fairness_rows = [], [], []
    for name in args.backends.split(","):
        with tempfile.TemporaryDirectory(prefix="bhype-bench-") as directory:
            try:
                context = backend(name, Path(directory))
                runtime, _ = context.__enter__()
            except Exception as exc:  # an unreachable server skips the backend, loudly
                print(f"{name}: skipped ({type(exc).__name__}: {exc})", file=sys.stderr)
                continue
            try:
                started, picked = latency(runtime, args.n)
                latency_rows.append({"backend": name, "to": "started (claimed)", **summary_ms(started)})
                latency_rows.append({"backend": name, "to": "picked up (runs)", **summary_ms(picked)})
                rate = throughput(runtime, args.tasks)
                throughput_rows.append({"backend": name, "tasks": str(args.tasks), "tasks/s": f"{rate:.0f}"})
                fairness_rows.append({"backend": name, **fairness(runtime, args.queued, 0.05)})
            finally:
                context.__exit__(None, None, None)

    print_table("submit -> running latency (idle queue, one task at a time)", latency_rows)
    print_table("throughput: trivial core.ping, 1 worker process x 2 threads", throughput_rows)
    print_table("fairness: B's first task while A holds a long queue (2 slots)", fairness_rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
