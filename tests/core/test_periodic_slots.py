"""Periodic jobs run once per schedule slot however many workers consume the queue: each
worker's scheduler claims the slot in the queue's storage (real SQLite file, real Redis) before
enqueueing, and only the winner enqueues."""

from __future__ import annotations

import datetime
import re
import threading

import pytest

import bhype_core.builtins.tasks as core_tasks
from bhype_core.hookspecs import hookimpl
from bhype_core.plugins import make_plugin_manager
from bhype_core.queue.periodic_slots import SlotClaimingScheduler, slot_key
from bhype_core.registry import PeriodicJob
from bhype_core.runtime import build_runtime
from bhype_core.testing.queue import queue_config, settings_from

BACKENDS = ["sqlite", pytest.param("redis", marks=pytest.mark.redis)]
AT = datetime.datetime


class Jobs:
    @hookimpl
    def bhype_register_periodic_jobs(self, register):
        register(PeriodicJob(name="test.every-minute", run=lambda context: None))
        register(PeriodicJob(name="test.at-half-past", run=lambda context: None, minute="30"))


@pytest.fixture(params=BACKENDS)
def raw_config(request, tmp_path):
    if request.param == "redis":
        return queue_config(tmp_path / "data", "redis", redis_url=request.getfixturevalue("redis_url"),
                            name=request.getfixturevalue("redis_prefix"))
    return queue_config(tmp_path / "data", "sqlite")


def worker_queue(raw):
    """The queue as one worker process builds it: its own runtime and huey instance."""
    pm = make_plugin_manager(load_entrypoints=False, plugins=[("core_tasks", core_tasks), ("jobs", Jobs())])
    return build_runtime(settings_from(raw), pm).queue


def scheduler_of(queue) -> SlotClaimingScheduler:
    return SlotClaimingScheduler(huey=queue.huey, stop_flag=threading.Event(), interval=1, periodic=True)


def queued_names(queue) -> list[str]:
    return sorted(queue.huey.dequeue().name for _ in range(queue.huey.pending_count()))


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
    workers = [start_worker(raw_config), start_worker(raw_config)]
    job = "vm.reconcile-states"
    for worker in workers:
        worker.wait_for_log(f"periodic job {job}: ")
    queued = [(name, slot) for w in workers for name, slot in QUEUED.findall(w.log_text()) if name == job]
    skipped = [(name, slot) for w in workers for name, slot in SKIPPED.findall(w.log_text()) if name == job]
    assert len(queued) == len(set(queued)), f"a slot queued twice: {queued}"
    assert set(skipped) <= set(queued)
    assert len(queued) + len(skipped) >= 2  # both workers checked


def test_a_claimed_run_that_cannot_be_queued_is_given_up_for_another_worker(raw_config, monkeypatch):
    first, second = worker_queue(raw_config), worker_queue(raw_config)
    due = AT(2026, 3, 2, 10, 31)

    def broken_enqueue(task):
        raise ConnectionError("queue unreachable")

    monkeypatch.setattr(first.huey, "enqueue", broken_enqueue)  # this worker's link to the queue fails
    scheduler_of(first).enqueue_periodic_tasks(due)
    assert not first.huey.storage.has_data_for_key(slot_key("test.every-minute", due))
    scheduler_of(second).enqueue_periodic_tasks(due)  # checking the same minute a little later
    assert queued_names(second) == ["test.every-minute"]
