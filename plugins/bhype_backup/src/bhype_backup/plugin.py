"""The ``backup`` plugin's hook implementations."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from bhype_backup import status
from bhype_backup.api import make_router
from bhype_backup.settings import BackupSettings
from bhype_core.plugin_api import (
    CliCommand,
    EventKind,
    ModelSet,
    PeriodicJob,
    RouterEntry,
    Runtime,
    SettingsSection,
    TaskKind,
    hookimpl,
)


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
    """``backup.probe`` (rsync on the host), the target kinds (admins), ``backup.run`` and
    ``backup.restore`` (admins, and VM owners for their own VMs), ``backup.delete_point``."""
    from bhype_backup import access, backup_run, restore, targets, tasks

    register(TaskKind(name=status.PROBE_KIND, run=status.probe, role="admin",
                      description="probe rsync on the host; store it for GET /api/v1/backup/status"))
    register(TaskKind(name="backup.target_add", run=targets.add_target, role="admin",
                      locks=lambda a: [f"backup_target:{a.get('name')}"],
                      description="add a backup target: pin its SSH host key, store its secret (worker only)"))
    register(TaskKind(name="backup.target_test", run=targets.test_target, role="admin",
                      description="test a target: reachable, logged in, writable, free space"))
    register(TaskKind(name="backup.target_remove", run=targets.remove_target, role="admin",
                      locks=lambda a: [f"backup_target:{a.get('name')}"],
                      description="remove a backup target and its secrets"))
    register(TaskKind(name="backup.run", run=backup_run.run_backup, role="operator", authorize=access.may_back_up,
                      locks=access.vm_lock,
                      description="back a VM up to a target as a new complete point (config, disks, manifest)"))
    register(TaskKind(name="backup.restore", run=restore.restore, role="operator", authorize=access.may_restore,
                      locks=access.restore_locks,
                      description="restore a point onto its (stopped) VM, or as a new VM; every chunk checked"))
    register(TaskKind(name="backup.delete_point", run=tasks.delete_point_task, role="admin",
                      locks=lambda a: [f"backup_point:{a.get('point')}"],
                      description="delete a backup point from its target and the list"))


@hookimpl
def bhype_register_periodic_jobs(register: Callable[[PeriodicJob], None]) -> None:
    """``backup.probe`` every 5 minutes, so the status route has something recent to show."""
    register(PeriodicJob(name=status.PROBE_KIND, kind=status.PROBE_KIND, minute="*/5", run_at_start=True,
                         description="probe rsync on the host for GET /api/v1/backup/status"))


@hookimpl
def bhype_register_event_kinds(register: Callable[[EventKind], None]) -> None:
    """``backup.target_full``: a target test or a backup found the target (nearly) full."""
    register(EventKind("backup.target_full", "warning", "A backup target is running out of space.",
                       {"target": "the target's name", "free": "free bytes, when the target can say"}))


@hookimpl
def bhype_register_cli_commands(register: Callable[[CliCommand], None]) -> None:
    """``bhype backup``: targets, backups and restores. When the jobs hook module of this
    distribution (``bhype_backup.jobs_cli``, entry point ``backup_jobs``) is installed it owns
    the one ``bhype backup`` command and these sub-commands join it (its ``EXTRA_COMMANDS``)."""
    from bhype_backup import cli

    try:
        from bhype_backup import jobs_cli  # type: ignore[attr-defined]
    except ImportError:
        register(cli.command())
        return
    if cli.add_commands not in jobs_cli.EXTRA_COMMANDS:
        jobs_cli.EXTRA_COMMANDS.append(cli.add_commands)


@hookimpl
def bhype_register_models(register: Callable[[ModelSet], None]) -> None:
    """Tables ``backup_target`` and ``backup_point`` with their migrations (branch ``backup``)."""
    from bhype_backup.models import BACKUP_MODELS, MIGRATIONS

    register(ModelSet(name="backup", models=BACKUP_MODELS, migrations=MIGRATIONS))


@hookimpl
def bhype_vm_last_backups(runtime: Runtime, uuids: list[str] | None) -> dict[str, datetime]:
    """Each VM's newest good point (complete, verification not failed): when it was taken."""
    from bhype_backup.last_backup import last_good_backups

    return last_good_backups(runtime, uuids)
