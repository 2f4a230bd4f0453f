"""Watchers (``bhype_register_watchers``): checks the worker runs every few seconds in threads of
its own, started with the worker and stopped with it; a failing tick or start is logged and the
rest go on."""

from __future__ import annotations

import threading
import time

import pytest

import bhype_core.builtins.tasks as core_tasks
from bhype_core.hookspecs import hookimpl
from bhype_core.plugins import make_plugin_manager
from bhype_core.registry import Watcher
from bhype_core.runtime import build_runtime
from bhype_core.tasks.watchers import WatcherThreads
from bhype_core.tasks.worker import start_in_process_worker
from bhype_core.testing.queue import queue_config, settings_from


class Watching:
    def __init__(self) -> None:
        self.ticks = 0
        self.bad_ticks = 0
        self.runtimes: list[object] = []
        self.ticked = threading.Event()

    @hookimpl
    def bhype_register_watchers(self, register):
        register(Watcher(name="test.counter", start=self.start, interval=0.02))
        register(Watcher(name="test.broken-tick", start=lambda runtime: self.bad_tick, interval=0.02))
        register(Watcher(name="test.broken-start", start=self.refuse, interval=0.02))

    def start(self, runtime):
        self.runtimes.append(runtime)

        def tick() -> None:
            self.ticks += 1
            if self.ticks >= 3:
                self.ticked.set()

        return tick

    def bad_tick(self) -> None:
        self.bad_ticks += 1
        raise OSError("disk gone")

    def refuse(self, runtime):
        raise RuntimeError("cannot watch")


def runtime_with(tmp_path, plugin):
    pm = make_plugin_manager(load_entrypoints=False, plugins=[("core_tasks", core_tasks), ("watching", plugin)])
    return build_runtime(settings_from(queue_config(tmp_path / "data", "sqlite")), pm)


def test_watchers_tick_in_threads_until_stopped(tmp_path, caplog):
    plugin = Watching()
    runtime = runtime_with(tmp_path, plugin)
    threads = WatcherThreads(runtime).start()
    try:
        assert plugin.ticked.wait(10)
        deadline = time.monotonic() + 10
        while plugin.bad_ticks < 3:  # a tick that raises does not end its watcher
            assert time.monotonic() < deadline
            time.sleep(0.01)
    finally:
        threads.stop()
    assert plugin.runtimes == [runtime]
    assert [thread.name for thread in threads.threads] == ["bhype-watch-test.counter", "bhype-watch-test.broken-tick"]
    assert not any(thread.is_alive() for thread in threads.threads)
    stopped_at = plugin.ticks
    time.sleep(0.1)
    assert plugin.ticks == stopped_at  # stopped means stopped
    assert "watcher test.broken-start (plugin watching) could not start" in caplog.text
    assert "watcher test.broken-tick failed; it goes on" in caplog.text and "disk gone" in caplog.text


def test_the_in_process_worker_starts_and_stops_its_watchers(tmp_path):
    plugin = Watching()
    worker = start_in_process_worker(runtime_with(tmp_path, plugin), workers=1)
    try:
        assert plugin.ticked.wait(10)
    finally:
        assert worker.stop(timeout=10)
    assert worker.watchers is not None and not any(t.is_alive() for t in worker.watchers.threads)


@pytest.mark.slow
def test_a_worker_process_runs_the_vm_state_file_watcher(tmp_path, start_worker):
    worker = start_worker(queue_config(tmp_path / "data", "sqlite"))
    worker.wait_for_log("watcher vm.state-files every 2s (plugin core_vms)")
