"""bHype's hook specifications: the whole contract between the core and its plugins.

Every hook is named ``bhype_…`` and documented here, where it is declared; this module is the
reference for plugin authors (``docs/plugins.md`` points here). Three grammars:

* ``bhype_register_<things>(register)`` runs once at start-up. The plugin calls ``register``
  with typed records from :mod:`bhype_core.registry`. Two plugins registering the same name is a
  start-up error naming both.
* ``bhype_vm_before_<verb>`` / ``bhype_vm_after_<verb>`` wrap each VM lifecycle step (create,
  start, stop, restart, destroy, edit, snapshot, rollback, clone, backup, restore, move,
  register, unregister). A ``before_`` hook may veto the step by raising
  :class:`bhype_core.errors.ValidationErrors` (or anything else); the task then fails naming the
  plugin. An ``after_`` hook only observes: if it raises, the step stays done, the error is
  logged on the task naming the plugin and listed in the task's result (``hook_errors``), and
  the other plugins are still called. The core calls them through :mod:`bhype_core.vm.hooks`.
* ``bhype_notify(event)`` is the one fan-out for popups, SNMP traps, mail. Each plugin's
  delivery failure is isolated, logged and recorded; it never fails the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from bhype_core.event_kinds import EventKind
    from bhype_core.events import Event
    from bhype_core.registry import (
        CliCommand,
        DoctorCheck,
        DriverEntry,
        ModelSet,
        PeriodicJob,
        RouterEntry,
        Sampler,
        SettingsSection,
        StorageBackendEntry,
        TaskKind,
        UndoAction,
        Watcher,
    )
    from bhype_core.runtime import Runtime
    from bhype_core.spec import VMSpec
    from bhype_core.tasks import TaskContext
    from bhype_core.vm.models import VMRef

PROJECT_NAME = "bhype"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# --------------------------------------------------------------------------------------------
# Start-up registration


@hookspec
def bhype_register_settings(register: Callable[[SettingsSection], None]) -> None:
    """Declare the plugin's configuration section.

    Called once while settings are validated at start-up, before any other hook.

    :param register: call with a :class:`~bhype_core.registry.SettingsSection` naming the TOML
        table (``[zfs]``) and the pydantic model that validates it. Every field needs a default:
        bHype must start with no configuration file at all. Invalid values stop start-up with an
        error that names the key and the file.
    """


@hookspec
def bhype_register_drivers(register: Callable[[DriverEntry], None]) -> None:
    """Offer hypervisor drivers (bhyve, QEMU, …).

    Called once at start-up. The driver in use is chosen by name from ``core.driver`` (or by
    platform detection when it is ``auto``); registering a driver never activates it.

    :param register: call with a :class:`~bhype_core.registry.DriverEntry` per driver.
    """


@hookspec
def bhype_register_storage_backends(register: Callable[[StorageBackendEntry], None]) -> None:
    """Offer storage backends for VM disks (directory, ZFS, …).

    Called once at start-up. Datastores in the configuration name the backend they use.

    :param register: call with a :class:`~bhype_core.registry.StorageBackendEntry` per backend.
    """


@hookspec
def bhype_register_tasks(register: Callable[[TaskKind], None]) -> None:
    """Offer task kinds the worker can run.

    Called once at start-up in both the API process (to validate and enqueue) and the worker
    (to execute); both must see the same set, which is why tasks are registered through this
    hook rather than decorated on a global queue.

    :param register: call with a :class:`~bhype_core.registry.TaskKind` per kind. Its name is
        global (``zfs.snapshot``): prefix it with the plugin's section name. State who may
        submit it (``role``, ``authorize``, ``system``): a kind that declares nothing is for
        admins only; the task queue enforces it at submission and again in the worker.
    """


@hookspec
def bhype_register_periodic_jobs(register: Callable[[PeriodicJob], None]) -> None:
    """Offer tasks the system submits on a schedule (snapshots, probes, audits).

    Called once in every process at start-up. Each job names a registered task kind and its
    arguments; every due run becomes a Task row owned by ``@system`` (with the kind's locks,
    log and progress, visible in the task list), queued by one worker however many run.

    :param register: call with a :class:`~bhype_core.registry.PeriodicJob` per job.
    """


@hookspec
def bhype_register_watchers(register: Callable[[Watcher], None]) -> None:
    """Offer checks the worker runs every few seconds in a thread of its own, for news that must
    not wait for a minutely periodic job (a VM's supervisor recording a crash).

    Called once in the worker at start-up. A watcher runs in every worker process, never
    through the queue; each tick must be cheap (file stats, not host commands) and do real
    work only when something changed.

    :param register: call with a :class:`~bhype_core.registry.Watcher` per watcher.
    """


@hookspec
def bhype_register_undo_actions(register: Callable[[UndoAction], None]) -> None:
    """Offer the steps recovery may run to undo what an interrupted task made (issue 11).

    A task writes an intent before each side effect (``context.intent("vm.remove_dir",
    "VM directory /…", datastore="default", name="web1")``), naming one of these actions and its
    JSON arguments; when the worker running the task dies, recovery calls the action with the
    task's context (log lines go to the interrupted task), newest intent first. An action must
    be idempotent and must cope with the thing never having been made (the intent comes
    *before* the effect): treat "already gone" as done.

    :param register: call with a :class:`~bhype_core.registry.UndoAction` per action; its name
        is global: prefix it with the plugin's section name (``zfs.destroy_clone``).
    """


@hookspec
def bhype_register_samplers(register: Callable[[Sampler], None]) -> None:
    """Offer work the worker does every few seconds, once per host (monitoring samples).

    Called once in the worker at start-up. Each sampler runs in a thread of the one worker
    process on the host that holds its lease (a lock file under ``<core.data_dir>/samplers``);
    when that worker stops, another takes over. Ticks that come due while one is still
    running are skipped (and counted), never queued; a tick that raises is logged and counted.
    A sampler is not a task: for host changes, submit one from the tick.

    :param register: call with a :class:`~bhype_core.registry.Sampler` per sampler.
    """


@hookspec
def bhype_register_routers(register: Callable[[RouterEntry], None]) -> None:
    """Add HTTP routes to the API.

    Called once by ``create_app``. A plugin's router is mounted under ``/api/v1/<name>``
    unless the entry gives another prefix (the web UI mounts at ``/``).

    :param register: call with a :class:`~bhype_core.registry.RouterEntry` per router.
    """


@hookspec
def bhype_register_cli_commands(register: Callable[[CliCommand], None]) -> None:
    """Add sub-commands to the ``bhype`` command line.

    Called once when the CLI starts.

    :param register: call with a :class:`~bhype_core.registry.CliCommand` per command.
    """


@hookspec
def bhype_register_models(register: Callable[[ModelSet], None]) -> None:
    """Declare the plugin's database tables and the Alembic migrations that create them.

    Called once at start-up and by ``bhype db upgrade``. Table names are prefixed with the
    plugin's name; each package owns its migration branch (its branch label is the set's name).

    :param register: call with a :class:`~bhype_core.registry.ModelSet`.
    """


@hookspec
def bhype_register_doctor_checks(register: Callable[[DoctorCheck], None]) -> None:
    """Add read-only host prerequisite checks to ``bhype doctor``.

    Called once by ``bhype doctor``. A check never changes the host.

    :param register: call with a :class:`~bhype_core.registry.DoctorCheck` per check.
    """


@hookspec
def bhype_register_event_kinds(register: Callable[[EventKind], None]) -> None:
    """Declare the kinds of event the plugin delivers through ``bhype_notify``.

    Called once at start-up. The catalog (the core's kinds plus every plugin's) is what
    notifiers read to build a MIB, filter by severity or label a popup
    (:func:`bhype_core.plugin_api.event_kinds`, ``GET /api/v1/event-kinds``). Delivering an
    event of an undeclared kind warns (an error in the test suite).

    :param register: call with an :class:`~bhype_core.event_kinds.EventKind` per kind; prefix
        its name with the plugin's section name (``zfs.pool_health``).
    """


# --------------------------------------------------------------------------------------------
# VM lifecycle: ``vm`` is the VM record as the task sees it (a :class:`bhype_core.vm.models.VMRef`:
# name, uuid, owner, datastore, validated spec, vm_dir, id), ``context`` the running task's
# :class:`bhype_core.tasks.TaskContext` (runner, settings, log, progress).
#
# The grammar, the same for every pair (the core calls them through bhype_core.vm.hooks):
# * ``before_<verb>`` may veto: raising :class:`~bhype_core.errors.ValidationErrors` (field
#   errors, each prefixed ``plugin <name>:``) or any other exception (a
#   :class:`~bhype_core.errors.PluginError` naming the plugin) stops the step before it changes
#   anything; plugins registered earlier are not called.
# * ``after_<verb>`` only observes: the step has happened and stays done. If an implementation
#   raises, the error is logged on the task (level ``error``, naming the plugin) and returned in
#   the task's result under ``hook_errors``; the other implementations are still called and the
#   step is not undone.
# Wrappers (``@hookimpl(wrapper=True)``) are called like on any pluggy hook.

@hookspec
def bhype_vm_before_create(vm: VMRef, context: TaskContext) -> None:
    """Called in the worker before a VM's disks and files are created (``vm.create``).

    May veto; nothing has been created yet, so a veto leaves no trace. ``vm.id`` is ``None``.

    :param vm: the VM record (before the step).
    :param context: the running task's context (runner, log, progress).
    """


@hookspec
def bhype_vm_after_create(vm: VMRef, context: TaskContext) -> None:
    """Called in the worker after a VM was created and its row committed. Observe only.

    A raise is recorded on the task (``hook_errors``); the VM stays created.

    :param vm: the VM record (after the step).
    :param context: the running task's context (runner, log, progress).
    """


@hookspec
def bhype_vm_before_start(vm: VMRef, context: TaskContext) -> None:
    """Called in the worker after preflight, before the hypervisor process is started.

    May veto.

    :param vm: the VM record (before the step).
    :param context: the running task's context (runner, log, progress).
    """


@hookspec
def bhype_vm_after_start(vm: VMRef, context: TaskContext) -> None:
    """Called in the worker once the hypervisor process runs. Observe only.

    :param vm: the VM record (after the step).
    :param context: the running task's context (runner, log, progress).
    """


@hookspec
def bhype_vm_before_stop(vm: VMRef, context: TaskContext) -> None:
    """Called in the worker before a VM is asked to stop (graceful or forced) or is suspended
    to disk (``vm.suspend``: the hypervisor ends too).

    May veto a graceful stop or a suspend; a forced stop logs a veto and goes on.

    :param vm: the VM record (before the step).
    :param context: the running task's context (runner, log, progress).
    """


@hookspec
def bhype_vm_after_stop(vm: VMRef, context: TaskContext) -> None:
    """Called in the worker once the hypervisor process has exited. Observe only.

    :param vm: the VM record (after the step).
    :param context: the running task's context (runner, log, progress).
    """


@hookspec
def bhype_vm_before_restart(vm: VMRef, context: TaskContext) -> None:
    """Called in the worker before ``vm.restart`` stops a running VM to start it again.

    May veto. The stop and start inside a restart fire their own ``stop``/``start`` hooks too.

    :param vm: the VM record (before the step).
    :param context: the running task's context (runner, log, progress).
    """


@hookspec
def bhype_vm_after_restart(vm: VMRef, context: TaskContext) -> None:
    """Called in the worker once a restarted VM runs again. Observe only.

    :param vm: the VM record (after the step).
    :param context: the running task's context (runner, log, progress).
    """


@hookspec
def bhype_vm_before_destroy(vm: VMRef, context: TaskContext) -> None:
    """Called in the worker before a VM and (optionally) its disks are destroyed.

    May veto, e.g. when a snapshot a backup depends on would be lost.

    :param vm: the VM record (before the step).
    :param context: the running task's context (runner, log, progress).
    """


@hookspec
def bhype_vm_after_destroy(vm: VMRef, context: TaskContext) -> None:
    """Called in the worker after a VM was destroyed. Observe only.

    ``vm`` is no longer in the database.

    :param vm: the VM record (after the step).
    :param context: the running task's context (runner, log, progress).
    """


@hookspec
def bhype_vm_before_edit(vm: VMRef, spec: VMSpec, changed: list[str], context: TaskContext) -> None:
    """Called in the worker before ``vm.edit`` stores a changed spec (disks not touched yet).

    May veto, e.g. a change a plugin cannot follow.

    :param vm: the VM record (before the step).
    :param spec: the validated new spec (``vm.spec`` is the old one before, the new one after).
    :param changed: the top-level spec fields that change.
    :param context: the running task's context (runner, log, progress).
    """


@hookspec
def bhype_vm_after_edit(vm: VMRef, spec: VMSpec, changed: list[str], context: TaskContext) -> None:
    """Called in the worker after ``vm.edit`` stored the new spec and changed the disks. Observe only.

    :param vm: the VM record (after the step).
    :param spec: the validated new spec (``vm.spec`` is the old one before, the new one after).
    :param changed: the top-level spec fields that change.
    :param context: the running task's context (runner, log, progress).
    """


@hookspec
def bhype_vm_before_snapshot(vm: VMRef, snapshot: str, context: TaskContext) -> None:
    """Called in the worker before a snapshot of every disk of a VM is taken (``zfs.snapshot``).

    May veto.

    :param vm: the VM record (before the step).
    :param snapshot: the snapshot's name (``@<snapshot>`` on every dataset of the VM).
    :param context: the running task's context (runner, log, progress).
    """


@hookspec
def bhype_vm_after_snapshot(vm: VMRef, snapshot: str, context: TaskContext) -> None:
    """Called in the worker after a VM's snapshot was taken. Observe only.

    :param vm: the VM record (after the step).
    :param snapshot: the snapshot's name (``@<snapshot>`` on every dataset of the VM).
    :param context: the running task's context (runner, log, progress).
    """


@hookspec
def bhype_vm_before_rollback(vm: VMRef, snapshot: str, context: TaskContext) -> None:
    """Called in the worker before a stopped VM's disks are rolled back to a snapshot.

    May veto, e.g. when newer data a backup needs would be lost.

    :param vm: the VM record (before the step).
    :param snapshot: the snapshot rolled back to.
    :param context: the running task's context (runner, log, progress).
    """


@hookspec
def bhype_vm_after_rollback(vm: VMRef, snapshot: str, context: TaskContext) -> None:
    """Called in the worker after a VM's disks were rolled back. Observe only.

    :param vm: the VM record (after the step).
    :param snapshot: the snapshot rolled back to.
    :param context: the running task's context (runner, log, progress).
    """


@hookspec
def bhype_vm_before_clone(vm: VMRef, target: str, context: TaskContext) -> None:
    """Called in the worker before VM ``vm`` is cloned as a new VM named ``target``.

    May veto. The clone's own record then appears through ``bhype_vm_*_register``.

    :param vm: the VM record (before the step).
    :param target: the new VM's name.
    :param context: the running task's context (runner, log, progress).
    """


@hookspec
def bhype_vm_after_clone(vm: VMRef, target: str, context: TaskContext) -> None:
    """Called in the worker after the clone exists (and is registered, when VM records exist). Observe only.

    :param vm: the VM record (after the step).
    :param target: the new VM's name.
    :param context: the running task's context (runner, log, progress).
    """


@hookspec
def bhype_vm_before_backup(vm: VMRef, destination: str, context: TaskContext) -> None:
    """Called in the worker before a backup of the VM starts (declared for backup plugins).

    May veto, e.g. while the VM is being moved.

    :param vm: the VM record (before the step).
    :param destination: where the backup goes (the backup plugin's target name).
    :param context: the running task's context (runner, log, progress).
    """


@hookspec
def bhype_vm_after_backup(vm: VMRef, destination: str, context: TaskContext) -> None:
    """Called in the worker after a backup of the VM finished. Observe only.

    :param vm: the VM record (after the step).
    :param destination: where the backup goes (the backup plugin's target name).
    :param context: the running task's context (runner, log, progress).
    """


@hookspec
def bhype_vm_before_restore(vm: VMRef, source: str, context: TaskContext) -> None:
    """Called in the worker before a VM is restored from a backup (declared for backup plugins).

    May veto.

    :param vm: the VM record (before the step).
    :param source: the backup restored from (the backup plugin's name for it).
    :param context: the running task's context (runner, log, progress).
    """


@hookspec
def bhype_vm_after_restore(vm: VMRef, source: str, context: TaskContext) -> None:
    """Called in the worker after a VM was restored. Observe only.

    :param vm: the VM record (after the step).
    :param source: the backup restored from (the backup plugin's name for it).
    :param context: the running task's context (runner, log, progress).
    """


@hookspec
def bhype_vm_before_move(vm: VMRef, destination: str, context: TaskContext) -> None:
    """Called in the worker before a VM is moved to another datastore or host (declared for move plugins).

    May veto.

    :param vm: the VM record (before the step).
    :param destination: the datastore (``datastore:<name>``) or host (``host:<name>``) it moves to.
    :param context: the running task's context (runner, log, progress).
    """


@hookspec
def bhype_vm_after_move(vm: VMRef, destination: str, context: TaskContext) -> None:
    """Called in the worker after a VM was moved. Observe only.

    :param vm: the VM record (after the step).
    :param destination: the datastore (``datastore:<name>``) or host (``host:<name>``) it moves to.
    :param context: the running task's context (runner, log, progress).
    """


@hookspec
def bhype_vm_before_register(vm: VMRef, context: TaskContext) -> None:
    """Called in the worker before a VM made outside ``vm.create`` gets its record (clone, import, restore).

    May veto; the VM's files exist but no row does. ``vm.id`` is ``None``. A plugin that
    follows every VM implements both ``after_create`` and ``after_register``.

    :param vm: the VM record (before the step).
    :param context: the running task's context (runner, log, progress).
    """


@hookspec
def bhype_vm_after_register(vm: VMRef, context: TaskContext) -> None:
    """Called in the worker after such a VM's record was committed. Observe only.

    :param vm: the VM record (after the step).
    :param context: the running task's context (runner, log, progress).
    """


@hookspec
def bhype_vm_before_unregister(vm: VMRef, context: TaskContext) -> None:
    """Called in the worker before a VM's record is removed while its files stay (move away, export).

    May veto.

    :param vm: the VM record (before the step).
    :param context: the running task's context (runner, log, progress).
    """


@hookspec
def bhype_vm_after_unregister(vm: VMRef, context: TaskContext) -> None:
    """Called in the worker after a VM's record was removed (its files stay). Observe only.

    :param vm: the VM record (after the step).
    :param context: the running task's context (runner, log, progress).
    """


# --------------------------------------------------------------------------------------------
# Plugins that declare hooks of their own


@hookspec(historic=True)
def bhype_add_hookspecs(pm: pluggy.PluginManager) -> None:
    """Add a plugin's own hook specifications to the plugin manager (like pytest's
    ``pytest_addhooks``), so other plugins can implement them: the web UI declares
    ``bhype_webui_register_pages`` and its siblings this way (:mod:`bhype_webui.hookspecs`).

    Historic: called once for every plugin as it is registered, whatever the order, so a
    plugin implementing the new hooks may be registered before the plugin that declares them
    (pluggy keeps its implementations pending until the specs arrive; the plugin manager's
    final check fails only for hooks nobody declared). Call ``pm.add_hookspecs(module)`` and
    nothing else; hooks declared this way follow the same rules (prefixed, documented where
    declared, a test naming each).

    :param pm: the :class:`~bhype_core.plugins.BhypePluginManager` being built.
    """


# --------------------------------------------------------------------------------------------
# Notifications


@hookspec
def bhype_notify(event: Event, runtime: Runtime) -> None:
    """Deliver one event (task failed, VM crashed, vulnerabilities found, pool degraded).

    Called through :func:`bhype_core.events.notify`, which calls every implementation even when
    one raises: each delivery failure is logged and recorded, never propagated to the caller.
    Implementations must be quick; slow deliveries (mail, traps over a slow link) should hand
    off to a task.

    :param event: the :class:`~bhype_core.events.Event` (kind, severity, message, subject,
        user, data, time).
    :param runtime: the delivering process's :class:`~bhype_core.runtime.Runtime`, where a
        notifier finds its settings section (``runtime.settings.section("snmp")``) and the
        runner. Like any hook argument it is optional: ``def bhype_notify(event)`` is valid.
    """


# --------------------------------------------------------------------------------------------
# Questions the core asks plugins (issue 20: the SNMP VM table's last backup time)


@hookspec
def bhype_vm_last_backups(runtime: Runtime, uuids: list[str] | None) -> dict[str, datetime] | None:
    """Answer "when was each VM last backed up?" from a backup plugin's own records.

    Called through :func:`bhype_core.last_backups.last_backup_times` (``plugin_api``), which
    merges every plugin's answer (the newest time per VM wins) — never call it by hand.
    Readers (the SNMP agent, once per refresh) must not call it per request: it may query the
    database.

    Only a **good** backup counts: complete (everything written, its manifest last), not a
    failed or interrupted run, and not one whose verification found a mismatch. A point not
    verified yet counts (verification may run only weekly; the column would otherwise lag);
    a failed restore drill does not disqualify a point (the data matched; the guest did not
    boot). The time is when the point was taken (its start: what the data represents), UTC.

    :param runtime: the calling process's :class:`~bhype_core.runtime.Runtime` (the plugin
        reads its own tables through it).
    :param uuids: the VM UUIDs asked about, or ``None`` for every VM the plugin knows. Keyed
        by UUID, not name: a name can be reused after a VM is destroyed, and the new VM must
        not show the old one's backups.
    :return: ``{vm_uuid: aware UTC datetime}`` for the VMs that have a good backup (a VM
        without one is left out), or ``None`` when the plugin keeps no backups.
    """
