"""The ``backup`` plugin's hook implementations."""

from __future__ import annotations

from collections.abc import Callable

from bhype_backup import status
from bhype_backup.api import make_router
from bhype_backup.settings import BackupSettings
from bhype_core.plugin_api import ModelSet, PeriodicJob, RouterEntry, SettingsSection, TaskKind, hookimpl


@hookimpl
def bhype_register_settings(register: Callable[[SettingsSection], None]) -> None:
    """Declare the ``[backup]`` section."""
    register(SettingsSection(name="backup", model=BackupSettings))


@hookimpl
def bhype_register_routers(register: Callable[[RouterEntry], None]) -> None:
    """Mount ``/api/v1/backup``."""
    register(RouterEntry(name="backup", router=make_router()))


@hookimpl
def bhype_register_tasks(register: Callable[[TaskKind], None]) -> None:
    """``backup.probe``: probe rsync now (``POST /api/v1/backup/status/refresh``); for admins,
    and submitted by bHype itself every 5 minutes
    (its periodic job)."""
    register(TaskKind(name=status.PROBE_KIND, run=status.probe, role="admin",
                      description="probe rsync on the host; store it for GET /api/v1/backup/status"))


@hookimpl
def bhype_register_periodic_jobs(register: Callable[[PeriodicJob], None]) -> None:
    """``backup.probe`` every 5 minutes, so the status route has something recent to show."""
    register(PeriodicJob(name=status.PROBE_KIND, kind=status.PROBE_KIND, minute="*/5", run_at_start=True,
                         description="probe rsync on the host for GET /api/v1/backup/status"))


@hookimpl
def bhype_register_models(register: Callable[[ModelSet], None]) -> None:
    """Tables ``backup_target`` and ``backup_point`` with their migrations (branch ``backup``)."""
    from bhype_backup.models import BACKUP_MODELS, MIGRATIONS

    register(ModelSet(name="backup", models=BACKUP_MODELS, migrations=MIGRATIONS))
