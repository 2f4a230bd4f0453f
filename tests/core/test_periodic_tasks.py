"""Periodic jobs as Task rows, in one process on SQLite and MariaDB: schedules checked at
start-up, due jobs, runs submitted as ``@system`` with the kind's locks, a run still going
making the next one skip, the runs at worker start, and pruning old system tasks. (One worker per minute:
test_periodic_slots.py; a scheduled run in a real worker: test_task_flows.py.)"""

from __future__ import annotations

import datetime
import logging
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlmodel import col

import bhype_core.builtins.models as core_models
import bhype_core.builtins.tasks as core_tasks
from bhype_core.db.migrate import upgrade
from bhype_core.db.models import utcnow
from bhype_core.db.task_models import Task
from bhype_core.errors import PluginError
from bhype_core.hookspecs import hookimpl
from bhype_core.plugins import make_plugin_manager
from bhype_core.registry import PeriodicJob
from bhype_core.runtime import build_runtime
from bhype_core.tasks import store
from bhype_core.tasks.periodic import due_jobs, submit_run
from bhype_core.tasks.retention import prune_system_tasks
from bhype_core.tasks.system import SYSTEM_OWNER, submit_as_system
from bhype_core.tasks.worker import describe, enqueue_start_jobs
from bhype_core.testing.queue import queue_config, settings_from
from bhype_core.testing.tasks import run_queued

AT = datetime.datetime


class Jobs:
    @hookimpl
    def bhype_register_periodic_jobs(self, register):
        register(PeriodicJob(name="test.tick", kind="core.ping", arguments={"echo": "tick", "locks": ["vm:t"]},
                             minute="*/15", hour="2", day_of_week="1-5"))
        register(PeriodicJob(name="test.at-start", kind="core.ping", arguments={"echo": "start"},
                             minute="0", hour="3", run_at_start=True))


@pytest.fixture
def runtime(tmp_path, database_url):
    raw = queue_config(tmp_path / "data", "sqlite")
    raw["core"]["database_url"] = database_url
    plugins = [("core_models", core_models), ("core_tasks", core_tasks), ("jobs", Jobs())]
    built = build_runtime(settings_from(raw), make_plugin_manager(load_entrypoints=False, plugins=plugins))
    upgrade(built)
    yield built
    built.queue.scheduler.lease.release()
    built.engine.dispose()


def build_with(tmp_path, plugin):
    pm = make_plugin_manager(load_entrypoints=False, plugins=[("core_tasks", core_tasks), ("bad", plugin)])
    return build_runtime(settings_from(queue_config(tmp_path / "data", "sqlite")), pm).queue


def test_due_jobs_follow_their_crontab_in_local_time(runtime):
    names = lambda at: [job.name for job in due_jobs(runtime, at)]  # noqa: E731
    # 2024-05-01 is a Wednesday, 2024-05-04 a Saturday.
    assert names(AT(2024, 5, 1, 2, 30)) == ["test.tick"]
    assert names(AT(2024, 5, 1, 2, 0)) == ["test.tick"]
    assert names(AT(2024, 5, 1, 2, 31)) == []
    assert names(AT(2024, 5, 4, 2, 30)) == []
    assert names(AT(2024, 5, 1, 3, 0)) == ["test.at-start"]
    assert "periodic job test.tick [*/15 2 * * 1-5] task core.ping (plugin jobs)" in describe(runtime)


def test_a_bad_schedule_or_unknown_kind_stops_start_up_naming_job_and_plugin(tmp_path):
    class BadSchedule:
        @hookimpl
        def bhype_register_periodic_jobs(self, register):
            register(PeriodicJob(name="test.bad", kind="core.ping", minute="61"))

    class UnknownKind:
        @hookimpl
        def bhype_register_periodic_jobs(self, register):
            register(PeriodicJob(name="test.lost", kind="core.nope"))

    with pytest.raises(PluginError, match="periodic job 'test.bad' of plugin 'bad' has a bad schedule"):
        build_with(tmp_path, BadSchedule())
    with pytest.raises(PluginError, match="periodic job 'test.lost' of plugin 'bad' names task kind 'core.nope'"):
        build_with(tmp_path, UnknownKind())


def test_a_run_is_a_system_task_with_the_kinds_locks_and_a_log(runtime):
    (job,) = due_jobs(runtime, AT(2024, 5, 1, 2, 45))
    task = submit_run(runtime, job, "the 02:45 run")
    assert (task.owner, task.kind, task.arguments, task.locks) == (
        SYSTEM_OWNER, "core.ping", {"echo": "tick", "locks": ["vm:t"]}, ["vm:t"])
    assert run_queued(runtime) == [task.id]
    done = store.get_task(runtime.engine, task.id)
    assert (done.state, done.result["echo"], done.result["user"]) == ("succeeded", "tick", None)
    assert [line.message for line in store.read_log(runtime.engine, task.id)] == ["ping from system"]


def test_a_run_still_queued_or_running_makes_the_next_one_skip(runtime, caplog):
    (job,) = due_jobs(runtime, AT(2024, 5, 1, 2, 45))
    first = submit_run(runtime, job, "the 02:45 run")
    with caplog.at_level(logging.WARNING, logger="bhype.worker"):
        assert submit_run(runtime, job, "the 03:00 run") is None
    assert f"periodic job test.tick: the 03:00 run skipped: its previous run (task {first.id}) is still queued" \
        in caplog.text
    run_queued(runtime)
    second = submit_run(runtime, job, "the 03:15 run")  # the first has ended
    assert second is not None and second.id != first.id


def test_runs_at_start_are_submitted_once_while_one_is_still_going(runtime):
    assert enqueue_start_jobs(runtime) == ["test.at-start"]
    assert enqueue_start_jobs(runtime) == []  # a second worker starting meanwhile: skipped
    (task,) = store.list_tasks(runtime.engine, owner=SYSTEM_OWNER)
    assert task.arguments == {"echo": "start"}


def test_old_succeeded_system_tasks_are_pruned_with_their_logs(runtime):
    old = submit_as_system(runtime, "core.ping", {"echo": "old"})
    failed = submit_as_system(runtime, "core.ping", {"fail": "old and failed"})
    recent = submit_as_system(runtime, "core.ping", {"echo": "recent"})
    mine = store.insert_task(runtime.engine, store.new_task(owner="alice", kind="core.ping", arguments={}, locks=[]))
    run_queued(runtime)
    with runtime.engine.begin() as connection:
        connection.execute(update(Task).where(col(Task.id).in_([old.id, failed.id, mine.id]))
                           .values(finished=utcnow() - timedelta(days=8)))
    assert prune_system_tasks(runtime.engine, keep_days=7) == 1
    assert store.get_task(runtime.engine, old.id) is None and store.read_log(runtime.engine, old.id) == []
    assert all(store.get_task(runtime.engine, task.id) is not None for task in (failed, recent, mine))


class FromSettings:
    """A job whose time is a setting (``[queue] name`` stands in for a plugin's own section)."""

    @hookimpl
    def bhype_register_periodic_jobs(self, register):
        def at_setting(settings):
            if settings.queue.name == "off":
                return None
            hour, minute = settings.queue.name.split("-")[1:3]
            return {"minute": minute, "hour": hour}

        register(PeriodicJob(name="test.set", kind="core.ping", minute="17", hour="4", day_of_week="1-5",
                             schedule=at_setting))


def queue_named(tmp_path, plugin, name):
    raw = queue_config(tmp_path / name, "sqlite")
    raw["queue"]["name"] = name
    pm = make_plugin_manager(load_entrypoints=False, plugins=[("core_tasks", core_tasks), ("timed", plugin)])
    return build_runtime(settings_from(raw), pm)


def test_a_schedule_callable_takes_the_time_from_the_loaded_settings(tmp_path):
    built = queue_named(tmp_path, FromSettings(), "q-22-05")
    names = lambda at: [job.name for job in due_jobs(built, at)]  # noqa: E731
    assert names(AT(2024, 5, 1, 22, 5)) == ["test.set"]  # a Wednesday: the static day_of_week stays
    assert names(AT(2024, 5, 1, 4, 17)) == []  # the static time is replaced
    assert names(AT(2024, 5, 4, 22, 5)) == []  # Saturday
    assert "periodic job test.set [05 22 * * 1-5] task core.ping (plugin timed)" in describe(built)
    off = queue_named(tmp_path, FromSettings(), "off")
    assert [job.name for job in due_jobs(off, AT(2024, 5, 1, 4, 17))] == []
    assert "periodic job test.set [off] task core.ping (plugin timed)" in describe(off)


def test_a_bad_schedule_from_settings_stops_start_up_naming_job_and_plugin(tmp_path):
    with pytest.raises(PluginError, match=r"periodic job 'test.set' of plugin 'timed' has a bad schedule: .*61"):
        assert queue_named(tmp_path, FromSettings(), "q-3-61").queue is None  # raises first
    with pytest.raises(PluginError, match="periodic job 'test.set' of plugin 'timed' has a bad schedule: ValueError"):
        assert queue_named(tmp_path, FromSettings(), "broken").queue is None  # raises first

    class WrongKey:
        @hookimpl
        def bhype_register_periodic_jobs(self, register):
            register(PeriodicJob(name="test.set", kind="core.ping", schedule=lambda settings: {"minutes": "5"}))

    with pytest.raises(PluginError, match="expected string values for minute, hour, day, month, day_of_week only"):
        assert queue_named(tmp_path, WrongKey(), "q").queue is None  # raises first
