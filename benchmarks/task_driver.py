"""``bench_tasks``'s embedded case: one process like ``bhype serve`` on the embedded default (the
API submits, the in-process worker runs), answering the benchmark's commands on stdin:

- ``latency N``: N pings one at a time on an idle queue; prints ``[[created→started,
  created→picked_up], ...]`` in seconds as JSON;
- ``throughput N``: N pings at once from 4 users; prints tasks per second;
- ``quit``.

``python task_driver.py CONFIG``.
"""

from __future__ import annotations

import json
import sys
import time

from bench_tasks import _ended, wait_for

import bhype_core.builtins.models as core_models
import bhype_core.builtins.tasks as core_tasks
from bhype_core.auth.principal import Principal
from bhype_core.config import load_settings
from bhype_core.plugins import make_plugin_manager
from bhype_core.runtime import build_runtime
from bhype_core.tasks import service
from bhype_core.tasks.worker import start_in_process_worker


def latency(runtime, count: int) -> list[list[float]]:
    samples = []
    for n in range(count):
        time.sleep(0.05)  # an idle queue: the worker threads have backed off
        task = service.submit(runtime, Principal("alice", "operator"), "core.ping", {"echo": n})
        done = wait_for(lambda task_id=task.id: _ended(runtime, task_id), "a ping", step=0.002)
        samples.append([(done.started - done.created).total_seconds(), (done.picked_up - done.created).total_seconds()])
    return samples


def throughput(runtime, count: int) -> float:
    tasks = [service.submit(runtime, Principal(f"user{n % 4}", "operator"), "core.ping", {}) for n in range(count)]
    wait_for(lambda: _ended(runtime, tasks[-1].id), "the batch", step=0.05)
    rows = [wait_for(lambda t=t: _ended(runtime, t.id), "a task") for t in tasks]
    return count / (max(r.finished for r in rows) - min(r.created for r in rows)).total_seconds()


def main(config: str) -> None:
    plugins = [("core_models", core_models), ("core_tasks", core_tasks)]
    runtime = build_runtime(load_settings(config), make_plugin_manager(load_entrypoints=False, plugins=plugins))
    worker = start_in_process_worker(runtime)
    print(json.dumps("ready"), flush=True)
    try:
        for line in sys.stdin:
            command, _, argument = line.strip().partition(" ")
            if command == "latency":
                print(json.dumps(latency(runtime, int(argument))), flush=True)
            elif command == "throughput":
                print(json.dumps(throughput(runtime, int(argument))), flush=True)
            else:
                break
    finally:
        worker.stop(timeout=30)


if __name__ == "__main__":
    main(sys.argv[1])
