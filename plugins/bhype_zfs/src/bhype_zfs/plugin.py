"""The ``zfs`` plugin's hook implementations."""

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
    StorageBackendEntry,
    TaskContext,
    TaskKind,
    UndoAction,
    VMRef,
    hookimpl,
)
from bhype_zfs.settings import ZfsSettings

# Kinds operators may run on their own VMs (the vm target; a dataset target is for admins).
OPERATOR_SNAPSHOT_KINDS = ("zfs.list_snapshots", "zfs.list_holds", "zfs.snapshot", "zfs.rollback",
                           "zfs.destroy_snapshot", "zfs.hold", "zfs.release")


# Kinds bHype submits itself other than as a periodic job: sub-tasks of the periodic ones.
SYSTEM_SUBTASKS = ("zfs.run_schedule",)


@hookimpl
def bhype_register_settings(register: Callable[[SettingsSection], None]) -> None:
    """Declare the ``[zfs]`` section."""
    register(SettingsSection(name="zfs", model=ZfsSettings))


@hookimpl
def bhype_register_storage_backends(register: Callable[[StorageBackendEntry], None]) -> None:
    """The ``zfs`` backend: a dataset per VM, zvol (or file) disks."""
    from bhype_zfs.storage import zfs_backend

    register(StorageBackendEntry(name="zfs", factory=zfs_backend,
                                 description="a ZFS dataset per VM; disks as zvols (volmode=dev) or files"))


@hookimpl
def bhype_register_tasks(register: Callable[[TaskKind], None]) -> None:
    """The ``zfs.*`` task kinds (pool init, snapshots, rollback, holds, clones, import, and
    ``zfs.probe``: refresh the status the API shows). Who may run each: :mod:`bhype_zfs.access`."""
    from bhype_zfs import status
    from bhype_zfs.access import may_clone, owns_target
    from bhype_zfs.tasks import KINDS

    # Operators act on their own VMs' snapshots and clones; everything about pools, datasets
    # and the host is for admins (the default role). bHype itself submits the kinds of its
    # periodic jobs (health, schedules, probe) as @system, and zfs.run_schedule, the sub-task
    # zfs.run_schedules submits per schedule (declared: system).
    operator_checks = {name: owns_target for name in OPERATOR_SNAPSHOT_KINDS} | {"zfs.clone": may_clone}
    for name, (run, locks, description) in KINDS.items():
        authorize = operator_checks.get(name)
        register(TaskKind(name=name, run=run, description=description, locks=locks,
                          role="operator" if authorize else "admin", authorize=authorize,
                          system=name in SYSTEM_SUBTASKS))
    register(TaskKind(name=status.PROBE_KIND, run=status.probe, role="admin",
                      description="probe OpenZFS and the configured pool; store it for GET /api/v1/zfs/status"))


@hookimpl
def bhype_register_undo_actions(register: Callable[[UndoAction], None]) -> None:
    """``zfs.undo_clone``: what recovery runs for an interrupted ``zfs.clone``."""
    from bhype_zfs.clone_undo import UNDO_ACTIONS

    for action in UNDO_ACTIONS:
        register(action)


@hookimpl
def bhype_register_periodic_jobs(register: Callable[[PeriodicJob], None]) -> None:
    """Scheduled snapshots every minute (task ``zfs.run_schedules``: each schedule decides
    what is due, and runs as a sub-task holding its dataset's and VMs' locks); pool health and
    capacity every 5 minutes; the status probe (``zfs.probe``) every 5 minutes."""
    from bhype_zfs import status

    register(PeriodicJob(name="zfs.snapshot-schedules", kind="zfs.run_schedules",
                         description="take due scheduled snapshots and prune by retention"))
    register(PeriodicJob(name="zfs.health", kind="zfs.health", minute="*/5",
                         description="pool health and capacity; notify changes"))
    register(PeriodicJob(name=status.PROBE_KIND, kind=status.PROBE_KIND, minute="*/5",
                         description="probe OpenZFS and the configured pool for GET /api/v1/zfs/status"))


@hookimpl
def bhype_register_routers(register: Callable[[RouterEntry], None]) -> None:
    """Mount ``/api/v1/zfs``."""
    from bhype_zfs.api import make_router

    register(RouterEntry(name="zfs", router=make_router()))


@hookimpl
def bhype_register_cli_commands(register: Callable[[CliCommand], None]) -> None:
    """``bhype zfs …``."""
    from bhype_zfs.cli import command

    register(command())


@hookimpl
def bhype_register_models(register: Callable[[ModelSet], None]) -> None:
    """Tables ``zfs_schedule``, ``zfs_schedule_state``, ``zfs_health_state`` (branch ``zfs``)."""
    from bhype_zfs.models import MIGRATIONS, ZFS_MODELS

    register(ModelSet(name="zfs", models=ZFS_MODELS, migrations=MIGRATIONS))


@hookimpl
def bhype_register_event_kinds(register: Callable[[EventKind], None]) -> None:
    """The events the health check and the snapshot schedules deliver."""
    pool = {"pool": "the pool's name", "health": "zpool health (ONLINE, DEGRADED, FAULTED …)",
            "capacity": "percent of the pool in use", "free": "free bytes"}
    register(EventKind("zfs.pool_health", "error", "A pool's health changed (DEGRADED, FAULTED …, or ONLINE again).",
                       pool))
    register(EventKind("zfs.pool_capacity", "warning", "A pool crossed a capacity threshold (or fell back below).",
                       {**pool, "level": "ok, warning or critical"}))
    register(EventKind("zfs.schedule_failed", "error", "A scheduled snapshot run failed.",
                       {"schedule": "the schedule's name"}))


def _zfs_store(vm: VMRef, context: TaskContext) -> Any:
    from bhype_core.plugin_api import open_datastore
    from bhype_zfs.storage import ZfsStorage

    store = open_datastore(context.runtime, vm.datastore)
    return store if isinstance(store, ZfsStorage) else None


@hookimpl
def bhype_vm_after_create(vm: VMRef, context: TaskContext) -> None:
    """Record the new VM's identity and spec as user properties on its dataset (for
    ``bhype zfs import-vms`` on another host)."""
    store = _zfs_store(vm, context)
    if store is not None:
        store.tag_vm(vm.name, str(vm.uuid), vm.owner, vm.spec.to_data())


@hookimpl
def bhype_vm_before_destroy(vm: VMRef, context: TaskContext) -> None:
    """Veto destroying a VM whose snapshots are held or are the origin of clones (before any
    disk is removed), with what to do about it."""
    store = _zfs_store(vm, context)
    if store is not None and store.host.exists(store.vm_dataset(vm.name)):
        from bhype_zfs.dependents import refuse_if_dependents

        refuse_if_dependents(store.host, store.vm_dataset(vm.name), f"VM {vm.name}")
