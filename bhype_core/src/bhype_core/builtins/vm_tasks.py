"""Built-in plugin ``core_vms``: VM lifecycle task kinds, the ``[vm]`` section, the VM and
template API routers and the ``bhype vm`` / ``bhype template`` commands."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bhype_core.hookspecs import hookimpl
from bhype_core.registry import (
    CliCommand,
    PeriodicJob,
    RouterEntry,
    SettingsSection,
    TaskKind,
    UndoAction,
    Watcher,
)
from bhype_core.vm.access import may_create, may_edit, owns_vm
from bhype_core.vm.create import create_vm
from bhype_core.vm.destroy import destroy_vm
from bhype_core.vm.edit import edit_vm
from bhype_core.vm.intents import UNDO_ACTIONS
from bhype_core.vm.orphans import sweep_job
from bhype_core.vm.power import force_stop_vm, restart_vm, start_vm, stop_vm
from bhype_core.vm.reconcile import reconcile
from bhype_core.vm.settings import SECTION, VmSettings
from bhype_core.vm.submit import vm_lock
from bhype_core.vm.suspend import suspend_vm
from bhype_core.vm.watch import INTERVAL, StateFileWatch

# name: (run, object check, description). Every vm.* kind is for operators, on their own VMs.
KINDS: dict[str, tuple[Callable[..., Any], Callable[..., None], str]] = {
    "vm.create": (create_vm, may_create, "create a VM from a template plus overrides (rolled back on any failure)"),
    "vm.start": (start_vm, owns_vm, "preflight, then start the VM under its supervisor"),
    "vm.stop": (stop_vm, owns_vm, "graceful ACPI shutdown; forced off after the timeout"),
    "vm.restart": (restart_vm, owns_vm, "graceful stop, then start"),
    "vm.force_stop": (force_stop_vm, owns_vm, "power the VM off at once"),
    "vm.suspend": (suspend_vm, owns_vm, "save the running VM's memory to disk and stop it; its next start resumes it"),
    "vm.edit": (edit_vm, may_edit, "change spec fields (offline fields need the VM stopped)"),
    "vm.destroy": (destroy_vm, owns_vm, "remove a stopped VM: disks (unless kept), files, record"),
}


@hookimpl
def bhype_register_settings(register: Callable[[SettingsSection], None]) -> None:
    """The ``[vm]`` section: datastores, admin templates, stop timeout."""
    register(SettingsSection(name=SECTION, model=VmSettings))


@hookimpl
def bhype_register_tasks(register: Callable[[TaskKind], None]) -> None:
    """``vm.*`` task kinds for operators on their own VMs (admins: any), each holding the lock
    ``vm:<name>``; ``vm.reconcile`` holds none (it only reads the hypervisor and rewrites the
    state cache of the submitter's VMs; bHype submits it itself through its periodic job)."""
    for name, (run, authorize, description) in KINDS.items():
        register(TaskKind(name=name, run=run, description=description, locks=vm_lock,
                          role="operator", authorize=authorize))
    register(TaskKind(name="vm.reconcile", run=reconcile, role="operator",
                      description="refresh the cached state of your VMs (admins: all) from the hypervisor"))
    register(TaskKind(name="vm.sweep_orphans", run=sweep_job, role="admin",
                      description="remove VM directories (and, if enabled, taps/bridges) no record owns"))


@hookimpl
def bhype_register_undo_actions(register: Callable[[UndoAction], None]) -> None:
    """What recovery runs for an interrupted ``vm.create`` (remove its row, disks, directory)
    or ``vm.destroy`` (finish it)."""
    for action in UNDO_ACTIONS:
        register(action)


@hookimpl
def bhype_register_periodic_jobs(register: Callable[[PeriodicJob], None]) -> None:
    """Reconcile VM states every minute, and at once when a worker starts (issue 4: state is
    reconciled from reality at start-up); sweep orphans hourly and at start (issue 11)."""
    register(PeriodicJob(name="vm.reconcile-states", kind="vm.reconcile", run_at_start=True,
                         description="refresh every VM's cached state from the hypervisor"))
    # Issue 11: what older crashes left (VM directories, taps, bridges no record owns).
    register(PeriodicJob(name="vm.sweep-orphans", kind="vm.sweep_orphans", minute="41", run_at_start=True,
                         description="remove VM directories (and, if enabled, taps/bridges) no record owns"))


@hookimpl
def bhype_register_watchers(register: Callable[[Watcher], None]) -> None:
    """Every VM supervisor's state file, so a crash is noticed within seconds, not at the next
    minutely reconcile."""
    register(Watcher(name="vm.state-files", start=StateFileWatch, interval=INTERVAL,
                     description="refresh a VM's state as soon as its supervisor records a change"))


@hookimpl
def bhype_register_routers(register: Callable[[RouterEntry], None]) -> None:
    """``/api/v1/vms`` and ``/api/v1/templates``."""
    from bhype_core.api.routes import templates, vms

    register(RouterEntry(name="vms", router=vms.make_router()))
    register(RouterEntry(name="templates", router=templates.make_router()))


@hookimpl
def bhype_register_cli_commands(register: Callable[[CliCommand], None]) -> None:
    """``bhype vm …`` and ``bhype template …``."""
    from bhype_core.commands import template, vm

    register(vm.command())
    register(template.command())
