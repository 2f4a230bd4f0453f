"""bHype's hook specifications: the whole contract between the core and its plugins.

Every hook is named ``bhype_…`` and documented here, where it is declared; this module is the
reference for plugin authors (``docs/plugins.md`` points here). Three grammars:

* ``bhype_register_<things>(register)`` runs once at start-up. The plugin calls ``register``
  with typed records from :mod:`bhype_core.registry`. Two plugins registering the same name is a
  start-up error naming both.
* ``bhype_vm_before_<verb>`` / ``bhype_vm_after_<verb>`` wrap each VM lifecycle step. A
  ``before_`` hook may veto the step by raising :class:`bhype_core.errors.ValidationErrors` (or
  any :class:`~bhype_core.errors.BhypeError`); the task then fails naming the plugin. An
  ``after_`` hook only observes; if it raises, the step has already happened and the task
  reports the error.
* ``bhype_notify(event)`` is the one fan-out for popups, SNMP traps, mail. Each plugin's
  delivery failure is isolated, logged and recorded; it never fails the caller.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
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
        Watcher,
    )
    from bhype_core.runtime import Runtime

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
        global (``zfs.snapshot``): prefix it with the plugin's section name.
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


# --------------------------------------------------------------------------------------------
# VM lifecycle: ``vm`` is the VM record as the task sees it (a :class:`bhype_core.vm.models.VMRef`:
# name, uuid, owner, datastore, validated spec, vm_dir, id), ``context`` the running task's
# :class:`bhype_core.tasks.TaskContext` (runner, settings, log, progress).


@hookspec
def bhype_vm_before_create(vm: Any, context: Any) -> None:
    """Called in the worker before a VM's disks and files are created.

    May veto by raising :class:`~bhype_core.errors.ValidationErrors`; nothing has been created
    yet, so a veto leaves no trace.

    :param vm: the validated VM record about to be created.
    :param context: the task context (runner, log, progress).
    """


@hookspec
def bhype_vm_after_create(vm: Any, context: Any) -> None:
    """Called in the worker after a VM was created and committed. Observe only.

    If it raises, ``vm.create`` still fails as a whole: the row, disks, NVRAM copy and
    directory are rolled back and the task names the plugin.

    :param vm: the created VM record.
    :param context: the task context.
    """


@hookspec
def bhype_vm_before_start(vm: Any, context: Any) -> None:
    """Called in the worker after preflight, before the hypervisor process is started.

    May veto by raising a :class:`~bhype_core.errors.BhypeError`.

    :param vm: the VM record about to start.
    :param context: the task context.
    """


@hookspec
def bhype_vm_after_start(vm: Any, context: Any) -> None:
    """Called in the worker once the hypervisor process runs. Observe only.

    :param vm: the started VM record.
    :param context: the task context.
    """


@hookspec
def bhype_vm_before_stop(vm: Any, context: Any) -> None:
    """Called in the worker before a VM is asked to stop (graceful or forced).

    May veto a graceful stop by raising; a forced stop ignores vetoes.

    :param vm: the VM record about to stop.
    :param context: the task context.
    """


@hookspec
def bhype_vm_after_stop(vm: Any, context: Any) -> None:
    """Called in the worker once the hypervisor process has exited. Observe only.

    :param vm: the stopped VM record.
    :param context: the task context.
    """


@hookspec
def bhype_vm_before_destroy(vm: Any, context: Any) -> None:
    """Called in the worker before a VM and (optionally) its disks are destroyed.

    May veto by raising, e.g. when a snapshot a backup depends on would be lost.

    :param vm: the VM record about to be destroyed.
    :param context: the task context.
    """


@hookspec
def bhype_vm_after_destroy(vm: Any, context: Any) -> None:
    """Called in the worker after a VM was destroyed. Observe only.

    :param vm: the destroyed VM record (no longer in the database).
    :param context: the task context.
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
