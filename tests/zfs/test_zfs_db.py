"""The plugin's own Alembic branch ``zfs``: its tables on SQLite and MariaDB, no drift against the
models, and schedule state that a second process (a restarted worker) reads back."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import inspect
from sqlmodel import select

from bhype_core.builtins import models
from bhype_core.db import migrate
from bhype_core.db.session import session
from bhype_core.runtime import build_runtime
from bhype_core.testing import make_settings
from bhype_core.testing.concurrency import run_together
from bhype_zfs import schedules
from bhype_zfs.models import ZfsScheduleBase, ZfsScheduleState


@pytest.fixture
def runtime_on(tmp_path, plugin_manager, register_plugin, database_url):
    import bhype_zfs.plugin

    register_plugin(models, "core_models")
    register_plugin(bhype_zfs.plugin, "zfs")

    def build():
        settings = make_settings(tmp_path / "data", core={"database_url": database_url})
        return build_runtime(settings, plugin_manager)

    return build


def test_zfs_branch_creates_its_tables_without_drift(runtime_on):
    runtime = runtime_on()
    assert "zfs_0001" in migrate.pending(runtime)
    applied = migrate.upgrade(runtime)
    assert "zfs_0001" in applied
    tables = set(inspect(runtime.engine).get_table_names())
    assert {"zfs_schedule", "zfs_schedule_state", "zfs_health_state"} <= tables
    assert migrate.drift(runtime) == []
    assert migrate.upgrade(runtime) == []  # idempotent
    runtime.engine.dispose()


def test_schedule_state_survives_a_restart(runtime_on):
    first = runtime_on()
    migrate.upgrade(first)
    row = schedules.create_schedule(first, ZfsScheduleBase(name="n1", dataset="tank/bhype/vms/a", hourly=2))
    when = datetime(2025, 3, 1, 10, 0, 0, 123456, tzinfo=UTC)
    schedules.record_run(first, row, {"hourly": "bhype_x_hourly"}, "", when)
    first.engine.dispose()

    second = runtime_on()
    (stored,) = schedules.list_schedules(second)
    with schedules.session(second) as db:
        states = schedules.states_of(db, stored.id)
    assert states["hourly"].last_taken == when
    assert states[schedules.RUN_ROW].last_error == ""
    schedules.delete_schedule(second, "n1")
    assert schedules.list_schedules(second) == []
    second.engine.dispose()


RUNS = 60


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_workers_recording_runs_of_one_schedule_at_once_wait_for_each_other(runtime_on):
    # record_run reads the state rows, then writes them. In a deferred SQLite transaction the
    # write fails at once with "database is locked" whenever the other worker committed after the
    # read (WAL snapshot rule); a write session takes the lock up front, so the other waits.
    first = runtime_on()
    migrate.upgrade(first)
    row = schedules.create_schedule(first, ZfsScheduleBase(name="busy", dataset="tank/bhype/vms/a", hourly=2))
    workers = [first, runtime_on()]  # two engines on one file, as two worker processes
    start = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)

    def work(n: int) -> None:
        for i in range(RUNS):
            when = start + timedelta(minutes=i, microseconds=n)
            schedules.record_run(workers[n], row, {"hourly": f"snap_{n}_{i}"}, f"worker {n} run {i}", when)

    assert run_together(work, len(workers)) == []
    with session(first) as db:
        states = schedules.states_of(db, row.id or 0)
        rows = db.exec(select(ZfsScheduleState)).all()
    assert len(rows) == 2 == len(states)  # one row per period, never a duplicate
    run = states[schedules.RUN_ROW]
    assert states["hourly"].last_taken == run.last_taken  # both rows from the same (last) run
    last = run.last_taken.microsecond  # which worker committed last: its final run
    assert run.last_taken == start + timedelta(minutes=RUNS - 1, microseconds=last)
    assert run.last_error == f"worker {last} run {RUNS - 1}"
    for runtime in workers:
        runtime.engine.dispose()


def test_a_schedule_with_nothing_due_runs_no_host_command():
    from bhype_zfs.argv import Tools
    from bhype_zfs.models import ZfsSchedule
    from bhype_zfs.tool import ZfsHost

    from .recorded import RecordedRunner

    runner = RecordedRunner({})  # any command would fail the test
    schedule = ZfsSchedule(name="quiet", dataset="tank/bhype/vms/a", hourly=2, daily=1)
    now = datetime(2025, 3, 1, 10, 30, tzinfo=UTC)
    last = {"hourly": datetime(2025, 3, 1, 10, 0, tzinfo=UTC), "daily": datetime(2025, 3, 1, 0, 0, tzinfo=UTC)}
    assert schedules.run_schedule(ZfsHost(runner, Tools()), schedule, last, now) == {"taken": {}, "pruned": []}
    assert runner.calls == []
    with pytest.raises(AssertionError, match="no recorded FreeBSD answer"):  # unknown state: the pool is asked
        schedules.run_schedule(ZfsHost(runner, Tools()), schedule, {"hourly": last["hourly"]}, now)


def test_health_job_waits_for_a_configured_pool(tmp_path, plugin_manager, register_plugin):
    import bhype_zfs.plugin
    from bhype_zfs import health

    from .helpers import task_context

    register_plugin(bhype_zfs.plugin, "zfs")
    missing = str(tmp_path / "no-zpool")
    runtime = build_runtime(make_settings(tmp_path / "data", zfs={"zpool_command": missing}), plugin_manager)
    assert health.health_task(task_context(runtime, "zfs.health", None)) == []
