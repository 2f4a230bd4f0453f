"""The embedded queue's doorbell (issue 15): an idle worker thread that has backed off sleeps
on the bell, and a message this process enqueues wakes it instead of waiting out the delay."""

from __future__ import annotations

import threading
from pathlib import Path

import bhype_core.builtins.models as core_models
import bhype_core.builtins.tasks as core_tasks
from bhype_core.auth.principal import Principal
from bhype_core.db.migrate import upgrade
from bhype_core.plugins import make_plugin_manager
from bhype_core.runtime import build_runtime
from bhype_core.tasks import scheduled, service, store
from bhype_core.tasks.doorbell import Doorbell, WakeableWorker
from bhype_core.tasks.worker import build_consumer, start_in_process_worker
from bhype_core.testing.queue import queue_config, settings_from

HOUR = 3600.0


def sqlite_runtime(tmp_path: Path):
    raw = queue_config(tmp_path / "data", "sqlite")
    pm = make_plugin_manager(load_entrypoints=False, plugins=[("core_models", core_models), ("core_tasks", core_tasks)])
    runtime = build_runtime(settings_from(raw), pm)
    upgrade(runtime)
    return runtime


def test_a_ring_before_the_sleep_is_not_lost():
    bell = Doorbell()
    seen = bell.rings
    bell.ring()  # between the look at the queue and the sleep
    assert bell.wait(seen, HOUR) is True  # returns at once instead of sleeping an hour


def test_an_idle_worker_thread_backed_off_to_an_hour_wakes_on_the_bell(tmp_path):
    runtime = sqlite_runtime(tmp_path)
    consumer = build_consumer(runtime, workers=1)
    worker = consumer._create_worker()
    assert isinstance(worker, WakeableWorker) and worker.doorbell is runtime.queue.huey.doorbell
    worker.delay = worker.max_delay = HOUR  # without the bell this sleep lasts an hour
    sleeper = threading.Thread(target=worker.loop, daemon=True)
    sleeper.start()
    scheduled.send(runtime.queue, scheduled.NUDGE)  # enqueued here: rings
    sleeper.join(60)
    assert not sleeper.is_alive()


def test_the_in_process_worker_runs_a_task_submitted_while_it_idles_and_stops_promptly(tmp_path):
    runtime = sqlite_runtime(tmp_path)
    import bhype_core.tasks.worker as worker_module

    worker_module_max = worker_module.MAX_DELAY
    worker_module.MAX_DELAY = HOUR  # idle threads would sleep an hour between polls
    try:
        handle = start_in_process_worker(runtime)
    finally:
        worker_module.MAX_DELAY = worker_module_max
    try:
        for worker, _ in handle.consumer.worker_threads:
            worker.delay = HOUR
        task = service.submit(runtime, Principal("alice", "operator"), "core.ping", {"echo": 1})
        done = threading.Event()

        def watch() -> None:
            while (row := store.get_task(runtime.engine, task.id)) is None or row.state != "succeeded":
                threading.Event().wait(0.05)
            done.set()

        threading.Thread(target=watch, daemon=True).start()
        assert done.wait(120), "the task waited for the worker's hour-long poll"
    finally:
        assert handle.stop(timeout=120)
