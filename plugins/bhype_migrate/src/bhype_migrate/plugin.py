"""The ``migrate`` plugin's hook implementations: peers, moves, the receiving side, the
``[migrate]`` section, the start veto for VMs being moved, ``/api/v1/migrate`` and
``bhype peer`` / ``bhype vm move``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bhype_core.plugin_api import (
    CliCommand,
    EventKind,
    ModelSet,
    PeriodicJob,
    RouterEntry,
    SettingsSection,
    TaskContext,
    TaskKind,
    UndoAction,
    ValidationErrors,
    VMRef,
    hookimpl,
)


def _vm_locks(arguments: dict[str, Any]) -> list[str]:
    name = arguments.get("vm")
    return [f"vm:{name}", f"migrate:{name}"] if isinstance(name, str) and name else []


def _received_locks(arguments: dict[str, Any]) -> list[str]:
    spec = arguments.get("spec")
    name = spec.get("name") if isinstance(spec, dict) else arguments.get("name")
    return [f"vm:{name}"] if isinstance(name, str) and name else []


def _peer_locks(arguments: dict[str, Any]) -> list[str]:
    name = arguments.get("name")
    return [f"peer:{name}"] if isinstance(name, str) and name else []


@hookimpl
def bhype_register_settings(register: Callable[[SettingsSection], None]) -> None:
    """The ``[migrate]`` section."""
    from bhype_migrate.settings import MigrateSettings

    register(SettingsSection(name="migrate", model=MigrateSettings))


@hookimpl
def bhype_register_tasks(register: Callable[[TaskKind], None]) -> None:
    """Peers (``migrate.peer_add|peer_test|peer_remove``), moves (``migrate.plan``, the dry
    run, and ``vm.move``, resumable), the receiving side (``migrate.receive``,
    ``migrate.discard``, ``migrate.check``: what a group host runs for a move from another host
    of the group) and ``migrate.cleanup`` (retries clean-ups a peer missed). Admins only."""
    from bhype_migrate import cleanup, move, peers, plan, receive

    register(TaskKind(name="migrate.peer_add", run=peers.add_peer, locks=_peer_locks,
                      description="pair with another bHype host: check its admin token, pin its SSH host key"))
    register(TaskKind(name="migrate.peer_test", run=peers.test_peer, locks=_peer_locks,
                      description="check a peer: API, SSH, hypervisor, space, a VM's switches and features"))
    register(TaskKind(name="migrate.peer_remove", run=peers.remove_peer, locks=_peer_locks,
                      description="forget a peer, its token and its pinned host key"))
    register(TaskKind(name="migrate.plan", run=plan.plan_move,
                      description="a move's plan (dry run): what is copied, bytes, offline window, refusals"))
    register(TaskKind(name="vm.move", run=move.move_vm, locks=_vm_locks, resumable=True,
                      description="move (or copy) a VM to a peer, cold or warm; rolled back on failure"))
    register(TaskKind(name="migrate.receive", run=receive.receive, locks=_received_locks,
                      description="verify a VM's files a peer sent, put them in place, register the VM"))
    # system: migrate.cleanup (a periodic job, owned by @system) retries a group host's discard
    # as a remote sub-task (a peer's goes through its API instead).
    register(TaskKind(name="migrate.discard", run=receive.discard, locks=_received_locks, system=True,
                      description="remove what a failed move left here (incoming files, the VM it registered)"))
    register(TaskKind(name="migrate.check", run=receive.check,
                      description="whether a VM fits on this host (a move from another host of the group asks)"))
    register(TaskKind(name="migrate.cleanup", run=cleanup.retry_cleanups,
                      description="retry removing what rolled-back moves left on peers that were unreachable"))


@hookimpl
def bhype_register_undo_actions(register: Callable[[UndoAction], None]) -> None:
    """``migrate.unreceive`` (an interrupted receive) and the source-removal marker."""
    from bhype_migrate import move, receive

    for action in (*receive.UNDO_ACTIONS, *move.UNDO_ACTIONS):
        register(action)


@hookimpl
def bhype_register_periodic_jobs(register: Callable[[PeriodicJob], None]) -> None:
    """Every minute (and at start): retry peer clean-ups that rolled-back moves could not do."""
    register(PeriodicJob(name="migrate.cleanup", kind="migrate.cleanup", run_at_start=True,
                         description="retry removing what rolled-back moves left on unreachable peers"))


@hookimpl
def bhype_register_routers(register: Callable[[RouterEntry], None]) -> None:
    """Mount ``/api/v1/migrate``."""
    from bhype_migrate.api import make_router

    register(RouterEntry(name="migrate", router=make_router()))


@hookimpl
def bhype_register_cli_commands(register: Callable[[CliCommand], None]) -> None:
    """``bhype peer …`` and ``bhype vm move …``."""
    from bhype_migrate.cli import move_command, peer_command

    register(peer_command())
    register(move_command())


@hookimpl
def bhype_register_models(register: Callable[[ModelSet], None]) -> None:
    """Tables ``migrate_peer`` and ``migrate_move`` (branch ``migrate``)."""
    from bhype_migrate.models import MIGRATE_MODELS, MIGRATIONS

    register(ModelSet(name="migrate", models=MIGRATE_MODELS, migrations=MIGRATIONS))


@hookimpl
def bhype_register_event_kinds(register: Callable[[EventKind], None]) -> None:
    """``migrate.rolled_back``: a move failed and was undone."""
    register(EventKind("migrate.rolled_back", "error", "A VM move failed and was rolled back (the VM stays here).",
                       {"vm": "the VM", "peer": "where it was going", "reason": "why"}))


@hookimpl
def bhype_vm_before_start(vm: VMRef, context: TaskContext) -> None:
    """Veto starting a VM that is being moved, or was moved and kept here as a stopped copy:
    it must never run on two hosts."""
    from bhype_core.plugin_api import local_host_name
    from bhype_migrate.journal import open_move

    held = open_move(context.runtime, str(vm.uuid))
    # Inside a group the journal is shared: the move's destination host starts the VM it got.
    if held is not None and held.peer != local_host_name(context.runtime):
        what = "was moved to" if held.state == "kept" else f"is being moved ({held.state}) to"
        raise ValidationErrors([("name", f"VM {vm.name} {what} peer {held.peer} (task {held.task_id}); "
                                         "it is not started here")])


@hookimpl(optionalhook=True)
def bhype_webui_register_pages(register: Callable[[Any], None]) -> None:
    """The admins' "Peers" page."""
    from bhype_migrate.ui import register_pages

    register_pages(register)


@hookimpl(optionalhook=True)
def bhype_webui_register_vm_tabs(register: Callable[[Any], None]) -> None:
    """The "Move" tab (the move dialog) on each VM page, for admins."""
    from bhype_migrate.ui import register_vm_tabs

    register_vm_tabs(register)


@hookimpl(optionalhook=True)
def bhype_webui_register_assets(register: Callable[[Any], None]) -> None:
    """The plugin's templates."""
    from bhype_migrate.ui import register_assets

    register_assets(register)
