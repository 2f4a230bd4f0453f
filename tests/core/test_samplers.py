"""Samplers (``bhype_register_samplers``): work every few seconds, once per host. Here in one
process: the fixed-rate arithmetic, skipped ticks counted (a fake clock, no sleeping on it),
errors counted, the host-wide lease; across real worker processes in test_task_flows.py."""

from __future__ import annotations

import os
import threading

import bhype_core.builtins.tasks as core_tasks
from bhype_core.hookspecs import hookimpl
from bhype_core.plugins import make_plugin_manager
from bhype_core.registry import Sampler
from bhype_core.runtime import build_runtime
from bhype_core.tasks.samplers import SamplerThreads, lease_path, next_due, try_lease
from bhype_core.tasks.worker import describe
from bhype_core.testing.queue import queue_config, settings_from


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Sampling:
    """A sampler whose first tick takes 3.5 intervals (on the fake clock) and whose every
    second tick raises."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.ticks = 0
        self.enough = threading.Event()

    @hookimpl
    def bhype_register_samplers(self, register):
        register(Sampler(name="test.sample/1", start=self.start, interval=0.01))

    def start(self, runtime):
        def tick() -> None:
            self.ticks += 1
            self.clock.now += 0.035 if self.ticks == 1 else 0.01
            if self.ticks >= 6:
                self.enough.set()
            if self.ticks % 2 == 0:
                raise OSError("sensor gone")

        return tick


def runtime_with(tmp_path, plugin):
    pm = make_plugin_manager(load_entrypoints=False, plugins=[("core_tasks", core_tasks), ("sampling", plugin)])
    return build_runtime(settings_from(queue_config(tmp_path / "data", "sqlite")), pm)


def test_next_due_keeps_the_rate_and_skips_what_a_slow_tick_overlapped():
    assert next_due(10.0, 10.5, 1.0) == (11.0, 0)  # on time
    assert next_due(10.0, 11.0, 1.0) == (12.0, 1)  # ended just as the next was due: skipped
    assert next_due(10.0, 13.5, 1.0) == (14.0, 3)  # 11, 12 and 13 never run


def test_slow_ticks_are_skipped_and_failing_ticks_counted(tmp_path, caplog):
    clock = FakeClock()
    plugin = Sampling(clock)
    runtime = runtime_with(tmp_path, plugin)
    threads = SamplerThreads(runtime, clock=clock).start()
    try:
        assert plugin.enough.wait(30)
    finally:
        threads.stop()
    stats = threads.stats["test.sample/1"]
    assert stats.leader and stats.skipped == 3  # the first tick overlapped three more
    assert stats.errors == stats.ticks // 2 and stats.last_error == "OSError: sensor gone"
    assert "sampler test.sample/1: a tick outlasted its 0.01s interval; 3 tick(s) skipped" in caplog.text
    assert "sampler test.sample/1 tick failed (1 so far); it goes on" in caplog.text
    assert "sampler test.sample/1 every 0.01s (plugin sampling)" in describe(runtime)
    assert lease_path(tmp_path / "data", "test.sample/1") == tmp_path / "data" / "samplers" / "test.sample_1.lock"


def test_the_lease_is_held_by_one_holder_and_never_follows_a_symlink(tmp_path):
    path = tmp_path / "samplers" / "x.lock"
    first = try_lease(path)
    assert first is not None
    assert try_lease(path) is None  # another open file description: refused while held
    os.close(first)
    again = try_lease(path)
    assert again is not None
    os.close(again)
    planted = tmp_path / "samplers" / "planted.lock"
    planted.symlink_to(tmp_path / "elsewhere")
    try:
        try_lease(planted)
    except OSError as exc:
        assert exc.errno == 40  # ELOOP: O_NOFOLLOW refused the link
    else:
        raise AssertionError("the lease followed a symlink")
    assert not (tmp_path / "elsewhere").exists()


def test_a_sampler_waits_for_the_lease_another_process_holds(tmp_path):
    clock = FakeClock()
    plugin = Sampling(clock)
    runtime = runtime_with(tmp_path, plugin)
    held = try_lease(lease_path(tmp_path / "data", "test.sample/1"))  # "another worker" holds it
    assert held is not None
    threads = SamplerThreads(runtime, clock=clock).start()
    try:
        assert not plugin.enough.wait(0.2) and plugin.ticks == 0 and not threads.stats["test.sample/1"].leader
        os.close(held)  # that worker stops: this one takes over
        assert plugin.enough.wait(30)
    finally:
        threads.stop()
