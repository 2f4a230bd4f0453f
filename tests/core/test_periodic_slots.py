"""Periodic jobs run once per schedule slot however many workers consume the queue: each
worker's scheduler claims the slot in the queue's storage (real SQLite file, real Redis) before
submitting the run's Task row, and only the winner submits."""

from __future__ import annotations

import datetime
import re
import threading
import time

import pytest

import bhype_core.builtins.models as core_models
import bhype_core.builtins.tasks as core_tasks
from bhype_core.db.migrate import upgrade
from bhype_core.hookspecs import hookimpl
from bhype_core.plugins import make_plugin_manager
from bhype_core.registry import PeriodicJob
from bhype_core.runtime import build_runtime
from bhype_core.tasks import store
from bhype_core.tasks.periodic_slots import SlotClaimingScheduler, slot_key
from bhype_core.tasks.system import SYSTEM_OWNER
from bhype_core.testing.queue import queue_config, settings_from

BACKENDS = ["sqlite", pytest.param("redis", marks=pytest.mark.redis)]
AT = datetime.datetime


class Jobs:
    @hookimpl
    def bhype_register_periodic_jobs(self, register):
        register(PeriodicJob(name="test.every-minute", kind="core.ping", arguments={"echo": "test.every-minute"}))
        register(PeriodicJob(name="test.at-half-past", kind="core.ping", arguments={"echo": "test.at-half-past"},
                             minute="30"))


@pytest.fixture(params=BACKENDS)
def raw_config(request, tmp_path):
    if request.param == "redis":
        raw = queue_config(tmp_path / "data", "redis", redis_url=request.getfixturevalue("redis_url"),
                           name=request.getfixturevalue("redis_prefix"))
    else:
        raw = queue_config(tmp_path / "data", "sqlite")
    return raw


def worker_queue(raw):
    """The queue as one worker process builds it: its own runtime and huey instance (over one
    shared, migrated database)."""
    plugins = [("core_models", core_models), ("core_tasks", core_tasks), ("jobs", Jobs())]
    runtime = build_runtime(settings_from(raw), make_plugin_manager(load_entrypoints=False, plugins=plugins))
    upgrade(runtime)
    return runtime.queue


def scheduler_of(queue) -> SlotClaimingScheduler:
    return SlotClaimingScheduler(huey=queue.huey, stop_flag=threading.Event(), interval=1, periodic=True)


def queued_names(queue) -> list[str]:
    """The jobs whose runs were submitted (Task rows owned by @system); they are then cancelled,
    as if run, so the next minute's runs are not skipped as "still going"."""
    engine = queue.runtime.engine
    rows = [task for task in store.list_tasks(engine, owner=SYSTEM_OWNER, state="queued")]
    for task in rows:
        store.cancel_queued(engine, task.id, "consumed by the test")
    return sorted(task.arguments["echo"] for task in rows)


def test_two_workers_checking_the_same_minute_queue_each_due_job_once(raw_config):
    first, second = worker_queue(raw_config), worker_queue(raw_config)
    one, other = scheduler_of(first), scheduler_of(second)

    one.enqueue_periodic_tasks(AT(2026, 3, 2, 10, 30, 5))
    other.enqueue_periodic_tasks(AT(2026, 3, 2, 10, 30, 40))  # same slot, later in the minute
    assert queued_names(first) == ["test.at-half-past", "test.every-minute"]

    # The next minute: only the every-minute job is due; whichever worker checks first runs it.
    other.enqueue_periodic_tasks(AT(2026, 3, 2, 10, 31, 1))
    one.enqueue_periodic_tasks(AT(2026, 3, 2, 10, 31, 59))
    assert queued_names(first) == ["test.every-minute"]
    assert first.huey.storage.has_data_for_key(slot_key("test.every-minute", AT(2026, 3, 2, 10, 31)))


def test_claims_are_deleted_by_their_owner_once_old(raw_config):
    queue = worker_queue(raw_config)
    scheduler = scheduler_of(queue)
    scheduler.enqueue_periodic_tasks(AT(2026, 3, 2, 10, 30))
    keys = [slot_key(name, AT(2026, 3, 2, 10, 30)) for name in ("test.every-minute", "test.at-half-past")]
    storage = queue.huey.storage
    scheduler.forget_old_claims()  # not old yet: kept, so a slow worker still finds them
    assert all(storage.has_data_for_key(key) for key in keys)
    scheduler.forget_old_claims(keep=0)
    assert not any(storage.has_data_for_key(key) for key in keys)
    # A claim that another worker won is not this worker's to delete.
    scheduler_of(worker_queue(raw_config)).enqueue_periodic_tasks(AT(2026, 3, 2, 10, 31))
    scheduler.enqueue_periodic_tasks(AT(2026, 3, 2, 10, 31))
    scheduler.forget_old_claims(keep=0)
    assert storage.has_data_for_key(slot_key("test.every-minute", AT(2026, 3, 2, 10, 31)))


def test_a_worker_restarted_within_the_minute_does_not_queue_that_minute_again(raw_config):
    # A worker restarted within the minute it had already queued finds its claim and skips.
    scheduler_of(worker_queue(raw_config)).enqueue_periodic_tasks(AT(2026, 3, 2, 10, 30, 1))
    restarted = worker_queue(raw_config)
    queued_names(restarted)  # the first run was consumed
    scheduler_of(restarted).enqueue_periodic_tasks(AT(2026, 3, 2, 10, 30, 50))
    assert queued_names(restarted) == []
    scheduler_of(restarted).enqueue_periodic_tasks(AT(2026, 3, 2, 10, 32))
    assert queued_names(restarted) == ["test.every-minute"]


QUEUED = re.compile(r"periodic job (\S+): queueing its (\d\d:\d\d) run")
SKIPPED = re.compile(r"periodic job (\S+): the (\d\d:\d\d) run was queued by another worker")


@pytest.mark.slow
def test_two_worker_processes_queue_the_minutely_reconcile_once(raw_config, start_worker):
    # Real worker processes with every installed plugin; each checks the periodic jobs as it
    # starts (vm.reconcile-states is due every minute).
    upgrade(build_runtime(settings_from(raw_config)))  # every plugin's tables, task tables included
    workers = [start_worker(raw_config), start_worker(raw_config)]
    job = "vm.reconcile-states"
    for worker in workers:  # each worker's scheduler thread checks the minute it starts in
        deadline = time.monotonic() + 60
        while not any(name == job for pattern in (QUEUED, SKIPPED) for name, _ in pattern.findall(worker.log_text())):
            assert worker.process.poll() is None and time.monotonic() < deadline, worker.log_text()
            time.sleep(0.05)
    queued = [(name, slot) for w in workers for name, slot in QUEUED.findall(w.log_text()) if name == job]
    skipped = [(name, slot) for w in workers for name, slot in SKIPPED.findall(w.log_text()) if name == job]
    assert len(queued) == len(set(queued)), f"a slot queued twice: {queued}"
    assert set(skipped) <= set(queued)
    assert len(queued) + len(skipped) >= 2  # both workers checked


def test_a_claimed_run_that_cannot_be_queued_is_given_up_for_another_worker(raw_config, monkeypatch):
    first, second = worker_queue(raw_config), worker_queue(raw_config)
    due = AT(2026, 3, 2, 10, 31)

    def broken_submit(*args, **kwargs):
        raise ConnectionError("database unreachable")

    # This worker cannot store the run's Task row.
    monkeypatch.setattr("bhype_core.tasks.periodic_slots.submit_run", broken_submit)
    scheduler_of(first).enqueue_periodic_tasks(due)
    assert not first.huey.storage.has_data_for_key(slot_key("test.every-minute", due))
    monkeypatch.undo()
    scheduler_of(second).enqueue_periodic_tasks(due)  # checking the same minute a little later
    assert queued_names(second) == ["test.every-minute"]
