"""The daily check's time is a setting: ``[hostops] check_time`` resolved into the periodic job's
crontab when the queue is built (``PeriodicJob.schedule``)."""

from __future__ import annotations

from datetime import datetime

import pytest

from bhype_core.errors import ConfigError
from bhype_core.tasks.periodic import due_jobs
from bhype_core.tasks.worker import describe


def due_checks(runtime, at: datetime) -> list[str]:
    return [job.name for job in due_jobs(runtime, at) if job.name == "hostops.check"]


def test_the_check_runs_at_the_configured_time(hostops_runtime) -> None:
    runtime = hostops_runtime(check_time="22:05")
    assert due_checks(runtime, datetime(2026, 12, 7, 22, 5)) == ["hostops.check"]
    assert due_checks(runtime, datetime(2026, 12, 7, 4, 17)) == []
    assert due_checks(runtime, datetime(2026, 12, 7, 22, 6)) == []
    assert any(line.startswith("periodic job hostops.check [5 22 * * *]") for line in describe(runtime))


def test_the_default_stays_0417(hostops_runtime) -> None:
    runtime = hostops_runtime()
    assert due_checks(runtime, datetime(2026, 12, 7, 4, 17)) == ["hostops.check"]
    assert due_checks(runtime, datetime(2026, 12, 7, 22, 5)) == []


@pytest.mark.parametrize("value", ["24:00", "4:17", "04:60", "noon", ""])
def test_a_bad_check_time_is_refused_by_the_settings(hostops_runtime, value) -> None:
    with pytest.raises((ConfigError, ValueError), match="check_time"):
        hostops_runtime(check_time=value)
