"""The update window's periodic job is due exactly when a window begins, its crontab taken from
``[hostops_update]`` when the queue is built (``PeriodicJob.schedule``); with windows off it is
never due (no hourly task rows)."""

from __future__ import annotations

from datetime import datetime, timedelta

import bhype_core.builtins.models as core_models
import bhype_hostops.update.plugin
from bhype_core.runtime import build_runtime
from bhype_core.tasks.periodic import due_jobs
from bhype_core.tasks.worker import describe
from bhype_core.testing import make_settings

MONDAY = datetime(2026, 12, 7)  # a Monday


def window_runtime(tmp_path, plugin_manager, register_plugin, **section):
    register_plugin(core_models, "core_models")
    register_plugin(bhype_hostops.update.plugin, "hostops_update")
    return build_runtime(make_settings(tmp_path / "data", hostops_update=section), plugin_manager)


def due_hours(runtime) -> list[tuple[str, int]]:
    """Every (weekday, hour:minute as minutes) of one week at which the window job is due."""
    days = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
    found = []
    for minute in range(7 * 24 * 60):
        at = MONDAY + timedelta(minutes=minute)
        if any(job.name == "hostops.update-window" for job in due_jobs(runtime, at)):
            found.append((days[at.weekday()], at.hour * 60 + at.minute))
    return found


def test_off_by_default_the_window_job_is_never_due(tmp_path, plugin_manager, register_plugin) -> None:
    runtime = window_runtime(tmp_path, plugin_manager, register_plugin)
    assert due_hours(runtime) == []
    assert any(line.startswith("periodic job hostops.update-window [off]") for line in describe(runtime))


def test_the_window_job_is_due_at_the_start_of_each_configured_window(tmp_path, plugin_manager,
                                                                       register_plugin) -> None:
    runtime = window_runtime(tmp_path, plugin_manager, register_plugin, window_enabled=True,
                             window_owner="admin1", window_days=["sun", "wed"], window_hour=3)
    assert due_hours(runtime) == [("wed", 180), ("sun", 180)]
    assert any(line.startswith("periodic job hostops.update-window [0 3 * * 0,3]") for line in describe(runtime))
