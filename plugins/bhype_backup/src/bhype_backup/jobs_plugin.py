"""The ``backup_jobs`` hook module of bhype_backup: jobs, retention, verify, drills, web UI.

A second entry point of the plugin (``backup_jobs = "bhype_backup.jobs_plugin"``) beside
``backup`` (targets, backup and restore), so each half registers its own kinds, tables and
routes.
"""

from __future__ import annotations

from collections.abc import Callable

from bhype_core.plugin_api import (
    Assets,
    CliCommand,
    EventKind,
    ModelSet,
    Page,
    PeriodicJob,
    RouterEntry,
    SettingsSection,
    TaskKind,
    VMTab,
    hookimpl,
)


@hookimpl
def bhype_register_settings(register: Callable[[SettingsSection], None]) -> None:
    """Declare ``[backup_jobs]`` (weekly verify, drill switch)."""
    from bhype_backup.jobs_settings import JobsSettings

    register(SettingsSection(name="backup_jobs", model=JobsSettings))


@hookimpl
def bhype_register_models(register: Callable[[ModelSet], None]) -> None:
    """Table ``backup_job`` (migration branch ``backup_jobs``)."""
    from bhype_backup.jobs_models import JOB_MODELS, MIGRATIONS

    register(ModelSet(name="backup_jobs", models=JOB_MODELS, migrations=MIGRATIONS))


@hookimpl
def bhype_register_tasks(register: Callable[[TaskKind], None]) -> None:
    """``backup.jobs.tick`` (periodic), ``backup.job.run`` (one job's run; admins, or bHype
    itself on schedule; lock ``backup_job:<id>``)."""
    from bhype_backup import jobs_run

    register(TaskKind(name=jobs_run.TICK_KIND, run=jobs_run.tick, role="admin",
                      description="submit due backup job runs and drills; report overdue jobs"))
    register(TaskKind(name=jobs_run.RUN_KIND, run=jobs_run.run_job, role="admin",
                      locks=jobs_run.job_lock,
                      description="run one backup job: backup.run per selected VM, then prune by retention"))
    from bhype_backup import verify

    register(TaskKind(name=verify.VERIFY_KIND, run=verify.verify, role="operator", system=True,
                      authorize=verify.point_owner, locks=lambda a: [f"backup_point:{a.get('point')}"],
                      description="re-read a backup point from its target and check every checksum"))
    from bhype_backup import drill

    register(TaskKind(name=drill.DRILL_KIND, run=drill.drill, role="admin",
                      locks=lambda a: [f"backup_drill:{a.get('job') or 'point-' + str(a.get('point'))}"],
                      description="restore the newest point as a temporary VM on an isolated switch, boot it, "
                                  "wait for its sign of life, destroy it"))
    register(TaskKind(name=verify.WEEKLY_KIND, run=verify.verify_weekly, role="admin",
                      description="queue backup.verify for the newest point of each VM on each target"))


@hookimpl
def bhype_register_periodic_jobs(register: Callable[[PeriodicJob], None]) -> None:
    """``backup.jobs.tick`` every minute (each job's own schedule decides what is due)."""
    from bhype_backup import jobs_run

    register(PeriodicJob(name="backup.jobs", kind=jobs_run.TICK_KIND, minute="*",
                         description="run due backup jobs and drills; report overdue jobs"))
    register(PeriodicJob(name="backup.verify-weekly", kind="backup.verify_weekly", minute="0", hour="3",
                         day_of_week="0", description="verify the newest point of each VM on each target"))


@hookimpl
def bhype_register_event_kinds(register: Callable[[EventKind], None]) -> None:
    """The events backup jobs, verification and drills deliver (through ``bhype_notify``);
    ``backup.target_full`` is the ``backup`` hook module's (a job run raises it too)."""
    job = {"job": "the job's name"}
    register(EventKind("backup.failed", "error", "A VM's backup in a job failed.",
                       {**job, "vm": "the VM", "target": "the target", "task": "the failed backup.run task",
                        "error": "what went wrong"}))
    register(EventKind("backup.overdue", "warning", "A backup job has not succeeded within its window.",
                       {**job, "due": "the slot that was due (UTC)", "last_success": "its last success, or null"}))
    register(EventKind("backup.verify_mismatch", "error", "A backup point no longer matches its manifest.",
                       {"point": "the point's id", "vm": "the VM", "target": "the target",
                        "files": "the files that differ or are missing"}))
    register(EventKind("backup.drill_failed", "error", "A restore drill did not see its sign of life.",
                       {"point": "the point's id", "vm": "the VM", "target": "the target", "error": "what happened"}))


@hookimpl
def bhype_register_routers(register: Callable[[RouterEntry], None]) -> None:
    """``/api/v1/backup/jobs`` (mounted beside the plugin's other backup routes)."""
    from bhype_backup.jobs_api import make_router

    register(RouterEntry(name="backup_jobs", router=make_router(), prefix="/api/v1/backup"))


@hookimpl
def bhype_register_cli_commands(register: Callable[[CliCommand], None]) -> None:
    """``bhype backup job …``."""
    from bhype_backup.jobs_cli import command

    register(command())


@hookimpl(optionalhook=True)
def bhype_webui_register_pages(register: Callable[[Page], None]) -> None:
    """The Backups page (targets, jobs, points, running backups; admins)."""
    from bhype_backup import ui

    for page in ui.pages():
        register(page)


@hookimpl(optionalhook=True)
def bhype_webui_register_vm_tabs(register: Callable[[VMTab], None]) -> None:
    """The Backups tab of a VM's page: its points with verify and restore, its running backups."""
    from bhype_backup import ui

    for tab in ui.vm_tabs():
        register(tab)


@hookimpl(optionalhook=True)
def bhype_webui_register_assets(register: Callable[[Assets], None]) -> None:
    """Templates ``backup_ui/…`` and the page script."""
    from bhype_backup import ui

    register(ui.assets())
