"""The plugin's own Alembic branch ``zfs``: its tables on SQLite and MariaDB, no drift against the
models, and schedule state that a second process (a restarted worker) reads back."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import inspect

from bhype_core.builtins import models
from bhype_core.db import migrate
from bhype_core.runtime import build_runtime
from bhype_core.testing import make_settings
from bhype_zfs import schedules
from bhype_zfs.models import ZfsScheduleBase


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
    assert health.periodic_job(task_context(runtime, "zfs.health", None)) == []
