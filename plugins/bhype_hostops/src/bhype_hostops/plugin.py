"""The ``hostops`` plugin's hook implementations (services, vulnerability and patch checks)."""

from __future__ import annotations

from collections.abc import Callable

from bhype_core.plugin_api import PeriodicJob, SettingsSection, TaskKind, hookimpl
from bhype_hostops.settings import HostopsSettings


@hookimpl
def bhype_register_settings(register: Callable[[SettingsSection], None]) -> None:
    """Declare the ``[hostops]`` section."""
    register(SettingsSection(name="hostops", model=HostopsSettings))


@hookimpl
def bhype_register_tasks(register: Callable[[TaskKind], None]) -> None:
    """``service.status|start|stop|restart|reload|enable|disable`` and ``hostops.probe_services``."""
    from bhype_hostops.service_tasks import task_kinds

    for kind in task_kinds():
        register(kind)


@hookimpl
def bhype_register_periodic_jobs(register: Callable[[PeriodicJob], None]) -> None:
    """The services' states every 5 minutes (and when a worker starts)."""
    from bhype_hostops.service_tasks import PROBE_KIND

    register(PeriodicJob(name=PROBE_KIND, kind=PROBE_KIND, minute="*/5", run_at_start=True,
                         description="query the allow-listed host services for GET /api/v1/hostops/services"))
