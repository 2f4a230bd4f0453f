"""The ``monitor`` plugin's hook implementations."""

from __future__ import annotations

from collections.abc import Callable

from bhype_core.plugin_api import PeriodicJob, RouterEntry, SettingsSection, TaskKind, hookimpl
from bhype_monitor import status
from bhype_monitor.api import make_router
from bhype_monitor.settings import MonitorSettings


@hookimpl
def bhype_register_settings(register: Callable[[SettingsSection], None]) -> None:
    """Declare the ``[monitor]`` section."""
    register(SettingsSection(name="monitor", model=MonitorSettings))


@hookimpl
def bhype_register_routers(register: Callable[[RouterEntry], None]) -> None:
    """Mount ``/api/v1/monitor``."""
    register(RouterEntry(name="monitor", router=make_router()))


@hookimpl
def bhype_register_tasks(register: Callable[[TaskKind], None]) -> None:
    """``monitor.probe``: read the host now (``POST /api/v1/monitor/status/refresh``); for
    admins, and submitted by bHype itself every 5 minutes
    (its periodic job)."""
    register(TaskKind(name=status.PROBE_KIND, run=status.probe, role="admin",
                      description="read the host's load and memory; store it for GET /api/v1/monitor/status"))


@hookimpl
def bhype_register_periodic_jobs(register: Callable[[PeriodicJob], None]) -> None:
    """``monitor.probe`` every 5 minutes, so the status route has something recent to show."""
    register(PeriodicJob(name=status.PROBE_KIND, kind=status.PROBE_KIND, minute="*/5", run_at_start=True,
                         description="read the host's load and memory for GET /api/v1/monitor/status"))
