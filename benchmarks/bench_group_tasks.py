"""Group of hosts (issue 22): task submit → running on a remote host's worker vs on the local host.

Three processes: two real workers (``python -m bhype_core.tasks.worker``, hosts h1 and h2,
2 threads each) sharing a fresh MariaDB database and the real Redis (each host its own queue
``<queue>.<host>``), and this client, which submits as an API on host h1 would. One
``core.ping`` at a time, targets interleaved: the local host h1, the remote host h2 (its nudge
goes to h2's queue), and h2 again with the nudge sent to the submitting host's own queue as
before issue 22's nudge routing (h2 then finds the task on its scheduler's timer,
``tasks.poll_interval`` = 1 s). Times come from the Task rows (``created`` → ``picked_up``: a
worker thread of the target host began running it); every task's answer and host are checked.

Run: ``./dev bench group_tasks`` or ``.venv/bin/python benchmarks/bench_group_tasks.py [-n N]``.
"""

from __future__ import annotations

import argparse
import importlib.metadata as metadata
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from report import percentile, print_table

import bhype_core.builtins.hosts as core_hosts
import bhype_core.builtins.models as core_models
import bhype_core.builtins.tasks as core_tasks
from bhype_core.auth.principal import Principal
from bhype_core.db.migrate import upgrade
from bhype_core.db.task_models import FINAL_STATES
from bhype_core.hosts.models import Host
from bhype_core.plugins import make_plugin_manager
from bhype_core.runtime import build_runtime
from bhype_core.tasks import service, store
from bhype_core.tasks.transport import BhypeQueue
from bhype_core.testing.database import MariaDBDatabases, mariadb_server_url
from bhype_core.testing.queue import WorkerProcess, delete_keys, redis_server_url, settings_from, write_config

ALICE = Principal("alice", "operator")
WAIT = 120.0


def wait_for(condition: Any, what: str, step: float = 0.005) -> Any:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(step)
    raise SystemExit(f"bench_group_tasks: timed out waiting for {what}")


def host_config(directory: Path, name: str, database_url: str, prefix: str) -> dict:
    return {
        "core": {"data_dir": str(directory / name), "database_url": database_url, "redis_url": redis_server_url(),
                 # The core's built-ins only: the benchmark measures the task path between hosts.
                 "disabled_plugins": sorted({ep.name for ep in metadata.entry_points(group="bhype")
                                             if not ep.name.startswith("core_")})},
        "queue": {"backend": "redis", "name": prefix, "workers": 2},
        "tasks": {"per_user_limit": 2},
        "host": {"name": name},
    }


def run_one(runtime: Any, host: str, number: int) -> float:
    """Submit one ping for ``host``; seconds from its row's creation to a worker thread of that
    host running it (answer and host checked)."""
    task = service.submit(runtime, ALICE, "core.ping", {"echo": number}, host=host)
    done = wait_for(lambda: (row := store.get_task(runtime.engine, task.id)) is not None
                    and row.state in FINAL_STATES and row, "a ping")
    answer = done.result or {}
    if done.state != "succeeded" or (answer.get("echo"), answer.get("task_id"), answer.get("pong")) != (
            number, task.id, True) or done.worker_host != host:
        raise SystemExit(f"bench_group_tasks: wrong outcome {done.state} {done.result} on {done.worker_host}")
    return (done.picked_up - done.created).total_seconds()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", type=int, default=200, help="tasks per target (default 200)")
    args = parser.parse_args(argv)
    prefix = f"bhype_bench_{secrets.token_hex(4)}"
    databases = MariaDBDatabases(mariadb_server_url())
    database_url = databases.create()
    workers: list[WorkerProcess] = []
    with tempfile.TemporaryDirectory(prefix="bhype-bench-") as directory:
        root = Path(directory)
        try:
            configs = {name: host_config(root, name, database_url, prefix) for name in ("h1", "h2")}
            plugins = [("core_models", core_models), ("core_tasks", core_tasks), ("core_hosts", core_hosts)]
            runtime = build_runtime(settings_from(configs["h1"]),
                                    make_plugin_manager(load_entrypoints=False, plugins=plugins))
            upgrade(runtime)
            for name, raw in configs.items():
                workers.append(WorkerProcess(write_config(root / f"{name}.toml", raw), root / f"{name}.log").start())
            for worker in workers:
                worker.wait_ready()
            from sqlmodel import Session, select

            def registered() -> bool:
                with Session(runtime.engine) as session:
                    return len(list(session.exec(select(Host)))) == 2

            wait_for(registered, "both hosts to register", step=0.1)
            old_way = runtime.queue.nudge

            def nudge_own_queue(host: str | None = None) -> bool:
                return BhypeQueue.nudge(runtime.queue)  # as before: the submitting host's queue

            cases = {"local host h1": [], "remote host h2": [], "remote h2, nudge on own queue (before)": []}
            for _ in range(5):  # warm-up
                run_one(runtime, "h1", 0), run_one(runtime, "h2", 0)
            for number in range(args.n):
                order = list(cases) if number % 2 == 0 else list(cases)[::-1]
                for label in order:
                    runtime.queue.nudge = nudge_own_queue if "before" in label else old_way
                    cases[label].append(run_one(runtime, "h1" if label.startswith("local") else "h2", number))
            runtime.queue.nudge = old_way
            local50, local99 = percentile(cases["local host h1"], 50), percentile(cases["local host h1"], 99)
            rows = []
            for label, samples in cases.items():
                p50, p99 = percentile(samples, 50), percentile(samples, 99)
                rows.append({"target": label, "n": str(len(samples)), "p50 ms": f"{p50 * 1000:.1f}",
                             "p99 ms": f"{p99 * 1000:.1f}", "ratio p50": f"{p50 / local50:.2f}",
                             "ratio p99": f"{p99 / local99:.2f}"})
            runtime.engine.dispose()
        finally:
            for worker in workers:
                worker.stop()
            databases.drop_all()
            delete_keys(redis_server_url(), prefix)
    print_table(f"submit → running (created → picked up), 2 hosts on MariaDB + Redis, anchor: the local host "
                f"(load {os.getloadavg()[0]:.2f})", rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
