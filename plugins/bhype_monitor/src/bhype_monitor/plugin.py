"""The ``monitor`` plugin's hook implementations."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bhype_core.plugin_api import (
    CliCommand,
    EventKind,
    ModelSet,
    PeriodicJob,
    RouterEntry,
    Sampler,
    SettingsSection,
    TaskKind,
    VMRef,
    hookimpl,
)
from bhype_monitor import status
from bhype_monitor.api import make_router
from bhype_monitor.metrics import make_metrics_router
from bhype_monitor.settings import MonitorSettings
from bhype_monitor.thresholds import EVENT_KINDS
from bhype_monitor.ui import (  # the web UI's hooks, implemented there (optionalhook)
    bhype_webui_register_assets,
    bhype_webui_register_dashboard_panels,
    bhype_webui_register_pages,
    bhype_webui_register_vm_columns,
    bhype_webui_register_vm_tabs,
)

__all__ = ["bhype_webui_register_assets", "bhype_webui_register_dashboard_panels", "bhype_webui_register_pages",
           "bhype_webui_register_vm_columns",
           "bhype_webui_register_vm_tabs"]


@hookimpl
def bhype_register_settings(register: Callable[[SettingsSection], None]) -> None:
    """Declare the ``[monitor]`` section."""
    register(SettingsSection(name="monitor", model=MonitorSettings))


@hookimpl
def bhype_register_routers(register: Callable[[RouterEntry], None]) -> None:
    """Mount ``/api/v1/monitor`` and ``/metrics``."""
    register(RouterEntry(name="monitor", router=make_router()))
    register(RouterEntry(name="monitor_metrics", router=make_metrics_router(), prefix=""))


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


@hookimpl
def bhype_register_samplers(register: Callable[[Sampler], None]) -> None:
    """``monitor``: one pass over the host and every VM each ``monitor.sample_interval_seconds``.
    The registry is built before settings are read, so the sampler wakes every second and
    samples when the configured interval's next boundary has come (:func:`sampler.start`)."""
    from bhype_monitor.sampler import start

    register(Sampler(name="monitor", start=start, interval=1.0,
                     description="host and VM metrics: live values, history, thresholds"))


@hookimpl
def bhype_register_models(register: Callable[[ModelSet], None]) -> None:
    """Table ``monitor_sample`` (branch ``monitor``)."""
    from bhype_monitor.models import MIGRATIONS, MONITOR_MODELS

    register(ModelSet(name="monitor", models=MONITOR_MODELS, migrations=MIGRATIONS))


@hookimpl
def bhype_register_event_kinds(register: Callable[[EventKind], None]) -> None:
    """The alert events (raised/cleared thresholds, a degraded pool, a VM that stopped by itself)."""
    for kind in EVENT_KINDS:
        register(kind)


@hookimpl
def bhype_register_cli_commands(register: Callable[[CliCommand], None]) -> None:
    """``bhype top`` and ``bhype stats VM``."""
    from bhype_monitor.cli import COMMANDS

    for command in COMMANDS:
        register(command)


@hookimpl
def bhype_vm_after_destroy(vm: VMRef, context: Any) -> None:
    """A destroyed VM's history goes with it."""
    from bhype_monitor.sampler import make_history, vm_series

    removed = make_history(context.runtime).forget(vm_series(vm.uuid))
    context.log(f"monitor: {removed} history rows of VM {vm.name} deleted")
