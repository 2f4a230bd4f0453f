"""The ``hostops`` plugin's hook implementations (services, vulnerability and patch checks)."""

from __future__ import annotations

from collections.abc import Callable

from bhype_core.plugin_api import (
    CliCommand,
    EventKind,
    ModelSet,
    PeriodicJob,
    RouterEntry,
    SettingsSection,
    TaskKind,
    hookimpl,
)
from bhype_hostops.settings import HostopsSettings
from bhype_hostops.webui import bhype_webui_register_assets, bhype_webui_register_pages  # noqa: F401  (hooks)


@hookimpl
def bhype_register_settings(register: Callable[[SettingsSection], None]) -> None:
    """Declare the ``[hostops]`` section."""
    register(SettingsSection(name="hostops", model=HostopsSettings))


@hookimpl
def bhype_register_tasks(register: Callable[[TaskKind], None]) -> None:
    """``service.status|start|stop|restart|reload|enable|disable`` and ``hostops.probe_services``."""
    from bhype_hostops import check_task, rsyncd
    from bhype_hostops.service_tasks import task_kinds

    register(TaskKind(name=check_task.CHECK_KIND, run=check_task.run_check, role="admin",
                      locks=lambda arguments: ["hostops:check"],
                      description="pkg audit, base system audit, freebsd-update / pkgbase and pkg upgrade -n; "
                                  "new findings are announced"))
    for kind in task_kinds():
        register(kind)
    register(TaskKind(name=rsyncd.APPLY_KIND, run=rsyncd.apply, role="admin",
                      locks=lambda arguments: ["hostops:rsyncd"],
                      description="write rsyncd.conf and its 0600 secrets file from the stored modules and users"))


@hookimpl
def bhype_register_periodic_jobs(register: Callable[[PeriodicJob], None]) -> None:
    """The services' states every 5 minutes (and when a worker starts); the vulnerability and
    patch checks daily at 04:17 host time (and on demand: ``POST /api/v1/hostops/check``)."""
    from bhype_hostops.check_task import CHECK_KIND
    from bhype_hostops.service_tasks import PROBE_KIND

    register(PeriodicJob(name=CHECK_KIND, kind=CHECK_KIND, minute="17", hour="4",
                         description="daily vulnerability and patch checks (pkg audit, freebsd-update, "
                                     "pkg upgrade -n)"))

    register(PeriodicJob(name=PROBE_KIND, kind=PROBE_KIND, minute="*/5", run_at_start=True,
                         description="query the allow-listed host services for GET /api/v1/hostops/services"))


@hookimpl
def bhype_register_models(register: Callable[[ModelSet], None]) -> None:
    """Tables ``hostops_rsync_module``, ``hostops_rsync_user``, ``hostops_finding``,
    ``hostops_check_run`` (branch ``hostops``)."""
    from bhype_hostops.models import HOSTOPS_MODELS, MIGRATIONS

    register(ModelSet(name="hostops", models=HOSTOPS_MODELS, migrations=MIGRATIONS))


@hookimpl
def bhype_register_event_kinds(register: Callable[[EventKind], None]) -> None:
    """``hostops.vulnerability`` and ``hostops.patches``."""
    from bhype_hostops.check_task import EVENT_KINDS

    for kind in EVENT_KINDS:
        register(kind)


@hookimpl
def bhype_register_routers(register: Callable[[RouterEntry], None]) -> None:
    """Mount ``/api/v1/hostops``."""
    from bhype_hostops.api import make_router

    register(RouterEntry(name="hostops", router=make_router()))


@hookimpl
def bhype_register_cli_commands(register: Callable[[CliCommand], None]) -> None:
    """``bhype service …``."""
    from bhype_hostops.cli import command

    register(command())
