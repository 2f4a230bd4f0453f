"""Built-in plugin ``core_vmbhyve``: import vm-bhyve guests in place and export them back
(issue 21): task kinds ``vmbhyve.import``/``vmbhyve.export``, the undo action that gives
adopted disks back, and the ``bhype import``/``bhype export`` commands."""

from __future__ import annotations

from collections.abc import Callable

from bhype_core.hookspecs import hookimpl
from bhype_core.registry import CliCommand, TaskKind, UndoAction
from bhype_core.vmbhyve.tasks import UNDO_IMPORT, export_vm, import_vms, undo_import


def _import_locks(arguments: dict) -> list[str]:
    # One import at a time; each guest's name is also a VM name being made.
    return ["vmbhyve:import", *(f"vm:{name}" for name in arguments.get("vms") or [])]


@hookimpl
def bhype_register_tasks(register: Callable[[TaskKind], None]) -> None:
    """``vmbhyve.import`` and ``vmbhyve.export``: host changes (and reads of root's files), so
    admin-only (issue 11: enforced at submit and again in the worker)."""
    register(TaskKind(name="vmbhyve.import", run=import_vms, locks=_import_locks, role="admin",
                      description="import vm-bhyve guests, adopting their disks in place (dry_run: plan only)"))
    register(TaskKind(name="vmbhyve.export", run=export_vm, role="admin",
                      locks=lambda arguments: [f"vm:{arguments.get('name')}"],
                      description="write a VM's vm-bhyve config (dry_run: print it)"))


@hookimpl
def bhype_register_undo_actions(register: Callable[[UndoAction], None]) -> None:
    """Give adopted disks back to vm-bhyve when an import was cut off."""
    register(UndoAction(name=UNDO_IMPORT, run=undo_import,
                        description="give disks adopted from vm-bhyve back (rename/unlink, never delete), "
                                    "then remove the VM directory"))


@hookimpl
def bhype_register_cli_commands(register: Callable[[CliCommand], None]) -> None:
    """``bhype import vm-bhyve`` and ``bhype export vm-bhyve``."""
    from bhype_core.commands.vmbhyve import export_command, import_command

    register(import_command())
    register(export_command())
