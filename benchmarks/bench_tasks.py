"""Per-user task queue: submit→running latency, trivial-task throughput, fairness delay.

Run: ``./dev bench tasks`` or ``.venv/bin/python benchmarks/bench_tasks.py [-n N] [--tasks N]``.
Each bHype case is compared with bare huey (``anchor_huey.py``, its own consumer process) on the same
storage, rounds interleaved. The embedded case runs ``task_driver.py`` (in-process worker, like
``bhype serve``); the Redis case starts a real ``python -m bhype_core.tasks.worker`` (2 worker threads) on the embedded
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

import anchor_huey
from report import print_table, summary_ms

import bhype_core.builtins.models as core_models
import bhype_core.builtins.tasks as core_tasks
from bhype_core.auth.principal import Principal
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
        task = service.submit(runtime, Principal("alice", "operator"), "core.ping", {"echo": n})
        done = wait_for(lambda task_id=task.id: _ended(runtime, task_id), "a ping")
        started.append((done.started - done.created).total_seconds())
        picked.append((done.picked_up - done.created).total_seconds())
    return started, picked


def _ended(runtime: Any, task_id: str) -> Any:
    task = store.get_task(runtime.engine, task_id)
    return task if task is not None and task.state in FINAL_STATES else None


def throughput(runtime: Any, count: int) -> float:
    """Trivial tasks per second from the first submission to the last finish (4 users)."""
    tasks = [service.submit(runtime, Principal(f"user{n % 4}", "operator"), "core.ping", {}) for n in range(count)]
    last = tasks[-1]
    wait_for(lambda: all(_ended(runtime, t.id) for t in (last, tasks[len(tasks) // 2])), "the batch", step=0.05)
    rows = [wait_for(lambda t=t: _ended(runtime, t.id), "a task") for t in tasks]
    span = max(r.finished for r in rows) - min(r.created for r in rows)
    return count / span.total_seconds()


def fairness(runtime: Any, queued: int, sleep: float) -> dict[str, str]:
    """User A queues ``queued`` tasks of ``sleep`` s; once both slots run A's tasks, B submits one.
    Returns B's start delay and how many of A's tasks started before it."""
    alice = [service.submit(runtime, Principal("alice", "operator"), "core.ping", {"sleep": sleep})
             for _ in range(queued)]
    wait_for(lambda: store.get_task(runtime.engine, alice[1].id).started is not None, "alice using the slots")
    bob = service.submit(runtime, Principal("bob", "operator"), "core.ping", {})
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


def bare_latency(ping: Any, count: int, idle: float) -> list[float]:
    """Bare huey: enqueue → the task body starts, one at a time after ``idle`` seconds."""
    samples = []
    for _ in range(count):
        time.sleep(idle)
        submitted, started = ping(time.time()).get(blocking=True, timeout=WAIT)
        samples.append(started - submitted)
    return samples


def bare_throughput(ping: Any, count: int) -> float:
    first = time.time()
    results = [ping(time.time()) for _ in range(count)]
    return count / (max(r.get(blocking=True, timeout=WAIT)[1] for r in results) - first)


@contextmanager
def bare_huey(storage: str, directory: Path) -> Iterator[Any]:
    """A bare huey consumer process on ``storage`` and the ``ping`` task to enqueue to it."""
    import subprocess

    huey, ping = anchor_huey.make_huey(storage)
    with open(directory / "anchor.log", "wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("anchor_huey.py")), "consume", storage],
            stdout=log, stderr=subprocess.STDOUT)
    try:
        ping(time.time()).get(blocking=True, timeout=60)
        yield ping
    finally:
        process.terminate()
        process.wait(30)
        huey.storage.flush_all()


@contextmanager
def embedded(directory: Path) -> Iterator[Callable[[str], Any]]:
    """A process like ``bhype serve`` on the embedded default; yields ``ask(command)``."""
    import json
    import subprocess

    raw = queue_config(directory / "data", "sqlite")
    raw["queue"]["workers"] = 2
    raw["tasks"] = {"per_user_limit": 2}
    raw["core"]["disabled_plugins"] = other_plugins()
    plugins = [("core_models", core_models), ("core_tasks", core_tasks)]
    runtime = build_runtime(settings_from(raw), make_plugin_manager(load_entrypoints=False, plugins=plugins))
    upgrade(runtime)
    runtime.engine.dispose()
    config = write_config(directory / "embedded.toml", raw)
    process = subprocess.Popen([sys.executable, str(Path(__file__).with_name("task_driver.py")), str(config)],
                               stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def ask(command: str) -> Any:
        assert process.stdin is not None and process.stdout is not None
        process.stdin.write(command + "\n")
        process.stdin.flush()
        return json.loads(process.stdout.readline())

    try:
        assert process.stdout is not None and json.loads(process.stdout.readline()) == "ready"
        yield ask
    finally:
        if process.stdin is not None:
            process.stdin.close()
        process.wait(60)


def ratio_rows(label: str, ours: list[float], anchor: list[float], what: str) -> list[dict[str, str]]:
    mine, bare = summary_ms(ours), summary_ms(anchor)
    return [{"backend": label, "to": what, "n": mine["n"], "bHype p50": mine["p50 ms"], "bHype p99": mine["p99 ms"],
             "huey p50": bare["p50 ms"], "huey p99": bare["p99 ms"],
             "ratio p50": f"{float(mine['p50 ms']) / float(bare['p50 ms']):.2f}"}]


def compare(label: str, directory: Path, rounds: int, per_round: int, tasks: int, idle: float,
            ours_latency: Callable[[int], list[list[float]]], ours_rate: Callable[[int], float], storage: str,
            ) -> tuple[list, list]:
    """Interleaved rounds of bHype and bare huey (order alternating) on the same storage."""
    claimed, picked, bare, rates, bare_rates = [], [], [], [], []
    with bare_huey(storage, directory) as ping:
        for round_no in range(rounds):
            steps = [lambda: [(claimed.append(a), picked.append(b)) for a, b in ours_latency(per_round)],
                     lambda: bare.extend(bare_latency(ping, per_round, idle))]
            for step in (steps if round_no % 2 == 0 else steps[::-1]):
                step()
        for round_no in range(2):
            steps = [lambda: rates.append(ours_rate(tasks)), lambda: bare_rates.append(bare_throughput(ping, tasks))]
            for step in (steps if round_no % 2 == 0 else steps[::-1]):
                step()
    latency_rows = ratio_rows(label, claimed, bare, "started (claimed)") + ratio_rows(label, picked, bare, "running")
    ours, theirs = sum(rates) / len(rates), sum(bare_rates) / len(bare_rates)
    throughput_rows = [{"backend": label, "tasks": str(tasks), "bHype tasks/s": f"{ours:.0f}",
                        "huey tasks/s": f"{theirs:.0f}", "ratio": f"{ours / theirs:.2f}",
                        "overhead ms/task": f"{(1 / ours - 1 / theirs) * 1000:.1f}"}]
    return latency_rows, throughput_rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="interleaved latency rounds (default 10)")
    parser.add_argument("-n", type=int, default=10, help="latency samples per side per round (default 10)")
    parser.add_argument("--tasks", type=int, default=300, help="tasks in the throughput batch (default 300)")
    parser.add_argument("--idle", type=float, default=0.2, help="seconds idle before each latency sample")
    parser.add_argument("--queued", type=int, default=100, help="user A's queue in the fairness case")
    parser.add_argument("--backends", default="sqlite,redis", help="comma-separated: sqlite, redis")
    args = parser.parse_args(argv)

    latency_rows, throughput_rows, fairness_rows = [], [], []
    for name in args.backends.split(","):
        with tempfile.TemporaryDirectory(prefix="bhype-bench-") as directory:
            work = Path(directory)
            if name == "sqlite":
                with embedded(work) as ask:
                    def ours(count: int) -> list[list[float]]:
                        samples = []
                        for _ in range(count):
                            time.sleep(args.idle)
                            samples += ask("latency 1")
                        return samples

                    got = compare("embedded (serve + in-process worker, SQLite)", work, args.rounds, args.n,
                                  args.tasks, args.idle, ours, lambda n: ask(f"throughput {n}"),
                                  f"sqlite:{work / 'anchor.sqlite3'}")
                latency_rows += got[0]
                throughput_rows += got[1]
                continue
            try:
                context = backend(name, work)
                runtime, _ = context.__enter__()
            except Exception as exc:  # an unreachable server skips the backend, loudly
                print(f"{name}: skipped ({type(exc).__name__}: {exc})", file=sys.stderr)
                continue
            try:
                def ours_redis(count: int, runtime: Any = runtime) -> list[list[float]]:
                    samples = []
                    for _ in range(count):
                        time.sleep(args.idle)
                        started, picked = latency(runtime, 1)
                        samples.append([started[0], picked[0]])
                    return samples

                got = compare("Redis + MariaDB (bhype worker process)", work, args.rounds, args.n, args.tasks,
                              args.idle, ours_redis, lambda n, runtime=runtime: throughput(runtime, n),
                              f"redis:{redis_server_url()}")
                latency_rows += got[0]
                throughput_rows += got[1]
                fairness_rows.append({"backend": name, **fairness(runtime, args.queued, 0.05)})
            finally:
                context.__exit__(None, None, None)

    print_table("submit -> running (ms; one task at a time after an idle pause; huey = bare huey, same storage)",
                latency_rows)
    print_table("throughput: trivial tasks, 2 worker threads, bHype vs bare huey on the same storage", throughput_rows)
    print_table("fairness: B's first task while A holds a long queue (2 slots)", fairness_rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
