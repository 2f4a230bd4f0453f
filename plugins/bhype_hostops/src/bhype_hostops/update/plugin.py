"""The ``hostops_update`` plugin's hook implementations: the host update workflow."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

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
    hookimpl,
)
from bhype_hostops.update.settings import SECTION, UpdateSettings

UI = Path(__file__).resolve().parent / "ui"


@hookimpl
def bhype_register_settings(register: Callable[[SettingsSection], None]) -> None:
    """The ``[hostops_update]`` section."""
    register(SettingsSection(name=SECTION, model=UpdateSettings))


@hookimpl
def bhype_register_tasks(register: Callable[[TaskKind], None]) -> None:
    """``hostops.update.plan`` (read-only) and ``hostops.update.run`` (resumable: the worker
    started after the reboot goes on with it), both for admins; a run holds ``host:update``."""
    from bhype_hostops.update.workflow import LOCK, plan_task, run_update

    register(TaskKind(name="hostops.update.plan", run=plan_task, role="admin",
                      description="plan a host update: VMs, services, updates, reboot, boot environment"))
    register(TaskKind(name="hostops.update.run", run=run_update, role="admin", resumable=True,
                      locks=lambda arguments: [LOCK],
                      description="update the host: boot environment, stop VMs and services, install, "
                                  "reboot, bring the VMs back in order, check"))
    from bhype_hostops.update.window import KIND, window_job

    register(TaskKind(name=KIND, run=window_job, role="admin",
                      description="start a host update run if an update window begins now"))


@hookimpl
def bhype_register_periodic_jobs(register: Callable[[PeriodicJob], None]) -> None:
    """Every hour on the hour: start a host update when a configured window begins (windows
    are off by default: the job then only says so)."""
    from bhype_hostops.update.window import KIND

    register(PeriodicJob(name="hostops.update-window", kind=KIND, minute="0",
                         description="start a host update when an update window begins (off by default)"))


@hookimpl
def bhype_register_routers(register: Callable[[RouterEntry], None]) -> None:
    """``/api/v1/hostops/update``."""
    from bhype_hostops.update.api import make_router

    register(RouterEntry(name="hostops_update", router=make_router(), prefix="/api/v1/hostops/update"))


@hookimpl
def bhype_register_cli_commands(register: Callable[[CliCommand], None]) -> None:
    """``bhype host update …``."""
    from bhype_hostops.update.cli import command

    register(command())


@hookimpl
def bhype_register_models(register: Callable[[ModelSet], None]) -> None:
    """Table ``hostops_update_run`` (branch ``hostops_update``)."""
    from bhype_hostops.update.models import MIGRATIONS, UPDATE_MODELS

    register(ModelSet(name="hostops_update", models=UPDATE_MODELS, migrations=MIGRATIONS))


@hookimpl
def bhype_register_event_kinds(register: Callable[[EventKind], None]) -> None:
    """What a host update reports through ``bhype_notify``."""
    fields = {"run": "the run's id", "task": "the task running it", "step": "the step",
              "state": "done, skipped, failed; for done: done or brought_back"}
    register(EventKind("hostops.update.step", "info", "A step of a host update finished.", fields))
    register(EventKind("hostops.update.failed", "error",
                       "A host update stopped at a step; resume it or bring the VMs back.",
                       {**fields, "error": "what went wrong"}))
    register(EventKind("hostops.update.done", "info",
                       "A host update finished (or its VMs were brought back without updating).", fields))


@hookimpl(optionalhook=True)
def bhype_webui_register_pages(register: Callable[[Page], None]) -> None:
    """The Host update page (admins): the plan first, then the run and its steps."""
    from bhype_hostops.update.ui_page import page_context

    register(Page("hostops-update", "host/update", "Host update", "hostops_update/update.html", page_context,
                  nav_label="Host update", nav_order=80, admin_only=True))


@hookimpl(optionalhook=True)
def bhype_webui_register_assets(register: Callable[[Assets], None]) -> None:
    """The page's template and script."""
    register(Assets("hostops_update", static_dir=UI / "static", template_dir=UI / "templates"))
