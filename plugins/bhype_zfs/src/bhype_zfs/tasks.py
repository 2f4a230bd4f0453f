"""The plugin's task kinds (``zfs.*``): every host change the API or CLI asks for runs here.

Each takes the running task's context plus JSON arguments and returns JSON data. Reads that
need the host are tasks too (the API process runs no host command): ``zfs.check``,
``zfs.plan_init``, ``zfs.list_snapshots``, ``zfs.list_holds``. Targets are
``vm`` (a registered VM on a ZFS datastore) or ``dataset`` (see :mod:`bhype_zfs.vms`); VM tasks
hold the lock ``vm:<name>`` like the core's ``vm.*`` kinds, dataset tasks ``dataset:<name>``,
pool initialisation ``pool:<name>``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bhype_core.plugin_api import ValidationErrors, hook_errors, register_vm, vm_after, vm_before, vm_records_available
from bhype_zfs import clones, health, import_vms, pool_init, schedules, snapshots
from bhype_zfs.clone_undo import UNDO_CLONE
from bhype_zfs.records import cloned_spec_data
from bhype_zfs.storage import NAME_PROPERTY, OWNER_PROPERTY
from bhype_zfs.tool import zfs_host, zfs_settings
from bhype_zfs.vms import datastore_of, find_vm_row, host_for, require_stopped, resolve, target_ref


def _plan(context: Any, pool: str, disks: list[str] | None, options: dict[str, Any]) -> tuple[Any, pool_init.InitPlan]:
    """The host and the plan for ``zfs.init_pool``/``zfs.plan_init`` arguments (the API's
    ``PoolInit``: ``pool``, ``disks``, ``layout``, ``adopt``, ``force``, ``root``, ``ashift``,
    ``mountpoint``; :func:`bhype_zfs.pool_init.plan_init` names what each means)."""
    host = zfs_host(context.runtime)
    root = options.pop("root", None) or zfs_settings(context.runtime).root
    return host, pool_init.plan_init(host, pool, disks=disks, root=root, **options)


def init_pool(
    context: Any, pool: str, disks: list[str] | None = None, confirm_commands: list[str] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """``zfs.init_pool``: create (or adopt) ``pool`` with bHype's layout; see :mod:`bhype_zfs.pool_init`.

    :param confirm_commands: the commands of the plan shown before (``zfs.plan_init``, passed
        with its ``initialised_at``): refused unless the plan worked out now is the same.
    """
    context.progress(2, "probing disks")
    host, plan = _plan(context, pool, disks, options)
    if confirm_commands is not None:
        pool_init.check_confirmed(plan, confirm_commands)
    ran = pool_init.apply_plan(host, plan, context)
    # The snippet itself is in the result (the CLI prints it, the task page shows it): the log
    # only points there, so a followed task does not print it twice.
    context.log(f"pool {plan.pool} is ready; its [zfs] settings and datastore are in this task's result")
    context.progress(100, "initialised")
    return {**plan.to_dict(), "ran": ran}


def plan_init_task(
    context: Any, pool: str, disks: list[str] | None = None, confirm_commands: list[str] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """``zfs.plan_init``: the exact commands ``zfs.init_pool`` would run (disks checked; nothing
    changes). Its ``commands`` and ``initialised_at`` go back as ``confirm_commands`` and
    ``initialised_at`` of the ``zfs.init_pool`` that runs them (``confirm_commands`` is ignored here)."""
    _, plan = _plan(context, pool, disks, options)
    for step in plan.steps:
        context.log(f"would run: {' '.join(step.argv)}  ({step.purpose})")
    return plan.to_dict()


def check(context: Any) -> dict[str, Any]:
    """``zfs.check``: OpenZFS version, every pool's health, space and devices; records the
    state the API shows and notifies changes (like the periodic health job)."""
    from bhype_zfs import health, pool_argv
    from bhype_zfs.parse import parse_zpool_status
    from bhype_zfs.status import probe

    runtime = context.runtime
    settings = zfs_settings(runtime)
    result: dict[str, Any] = {"status": probe(context)}  # also refreshes GET /status
    if not result["status"]["tools"]["found"]:
        return result
    events = health.check_health(runtime)
    host = zfs_host(runtime, settings.command_timeout)
    pools = []
    for pool in health.recorded(runtime):
        detail = parse_zpool_status(host.text(pool_argv.pool_status(host.tools, pool["pool"])))
        pools.append({**pool, "status": detail.status, "action": detail.action, "errors": detail.errors,
                      "devices": [{"name": d.name, "state": d.state, "read": d.read, "write": d.write,
                                   "checksum": d.checksum, "note": d.note} for d in detail.devices]})
    return {**result, "pools": pools, "events": [event.to_dict() for event in events]}


def list_snapshots(context: Any, vm: str | None = None, dataset: str | None = None) -> dict[str, Any]:
    """``zfs.list_snapshots``: the tree's snapshots, oldest first, with sizes and hold counts."""
    target = resolve(context.runtime, vm, dataset)
    groups = snapshots.list_snapshots(host_for(context.runtime, target), target.dataset)
    return {"dataset": target.dataset, "snapshots": [g.to_dict() for g in groups]}


def list_holds(context: Any, name: str, vm: str | None = None, dataset: str | None = None) -> dict[str, Any]:
    """``zfs.list_holds``: every hold on ``@name`` in the tree."""
    target = resolve(context.runtime, vm, dataset)
    held = snapshots.holds(host_for(context.runtime, target), target.dataset, snapshots.require_name(name))
    return {"holds": [{"snapshot": h.snapshot, "tag": h.tag, "created": h.created.isoformat()} for h in held]}


def snapshot(context: Any, name: str | None = None, vm: str | None = None, dataset: str | None = None,
             recursive: bool = True) -> dict[str, Any]:
    """``zfs.snapshot``: snapshot a VM (every disk at once) or a dataset tree as ``@name``; a
    VM's snapshot fires ``bhype_vm_before_snapshot``/``bhype_vm_after_snapshot``."""
    runtime = context.runtime
    target = resolve(runtime, vm, dataset)
    name = snapshots.require_name(name) if name is not None else snapshots.default_name()
    ref = target_ref(runtime, target)
    if ref is not None:
        vm_before(runtime.pm, "snapshot", ref, context, snapshot=name)
    entry = snapshots.take(host_for(runtime, target), target.dataset, name, recursive=recursive)
    context.log(f"snapshot {target.dataset}@{name} of {len(entry.members)} dataset(s)")
    failures = vm_after(runtime.pm, "snapshot", ref, context, snapshot=name) if ref is not None else []
    return {**entry.to_dict(), **hook_errors(failures)}


def rollback(context: Any, name: str, vm: str | None = None, dataset: str | None = None,
             destroy_newer: bool = False) -> dict[str, Any]:
    """``zfs.rollback``: roll a stopped VM (or a dataset tree) back to ``@name``; a VM's
    rollback fires ``bhype_vm_before_rollback``/``bhype_vm_after_rollback``."""
    runtime = context.runtime
    target = resolve(runtime, vm, dataset)
    require_stopped(runtime, target)
    name = snapshots.require_name(name)
    ref = target_ref(runtime, target)
    if ref is not None:
        vm_before(runtime.pm, "rollback", ref, context, snapshot=name)
    result = snapshots.rollback(host_for(runtime, target), target.dataset, name, destroy_newer=destroy_newer)
    if result["destroyed"]:
        context.log(f"destroyed newer snapshots: {', '.join(result['destroyed'])}", "warning")
    context.log(f"rolled {', '.join(result['datasets'])} back to @{name}")
    failures = vm_after(runtime.pm, "rollback", ref, context, snapshot=name) if ref is not None else []
    return {**result, **hook_errors(failures)}


def destroy_snapshot(context: Any, name: str, vm: str | None = None, dataset: str | None = None) -> dict[str, Any]:
    """``zfs.destroy_snapshot``: destroy ``@name`` on the tree (refused if held or cloned)."""
    target = resolve(context.runtime, vm, dataset)
    destroyed = snapshots.destroy(host_for(context.runtime, target), target.dataset, snapshots.require_name(name))
    context.log(f"destroyed {', '.join(destroyed)}")
    return {"destroyed": destroyed}


def hold(context: Any, name: str, tag: str, vm: str | None = None, dataset: str | None = None) -> dict[str, Any]:
    """``zfs.hold``: protect ``@name`` on the tree with hold ``tag``."""
    target = resolve(context.runtime, vm, dataset)
    held = snapshots.hold(host_for(context.runtime, target), target.dataset, snapshots.require_name(name), tag)
    return {"holds": [{"snapshot": h.snapshot, "tag": h.tag} for h in held]}


def release(context: Any, name: str, tag: str, vm: str | None = None, dataset: str | None = None) -> dict[str, Any]:
    """``zfs.release``: drop hold ``tag`` from ``@name`` on the tree."""
    target = resolve(context.runtime, vm, dataset)
    left = snapshots.release(host_for(context.runtime, target), target.dataset, snapshots.require_name(name), tag)
    return {"holds": [{"snapshot": h.snapshot, "tag": h.tag} for h in left]}


def clone(context: Any, source: str, target: str, snapshot: str | None = None, mode: str = "linked",
          owner: str | None = None) -> dict[str, Any]:
    """``zfs.clone``: clone VM ``source`` as VM ``target`` (linked, full or promote); the new
    VM gets its own record (new UUID, MACs, VNC password) through ``register_vm`` when the
    source has one. Fires ``bhype_vm_before_clone``/``bhype_vm_after_clone`` on the source
    (and the ``register`` pair on the clone)."""
    runtime = context.runtime
    src = resolve(runtime, vm=source)
    store = src.store
    assert store is not None
    row = find_vm_row(runtime, source)
    owner = owner or context.user or (row.owner if row is not None else None)
    if not owner:
        raise ValidationErrors([("owner", "the clone needs an owner")])
    if find_vm_row(runtime, target) is not None:
        raise ValidationErrors([("target", f"a VM named {target!r} already exists")])
    source_ref = target_ref(runtime, src)
    if source_ref is not None:
        vm_before(runtime.pm, "clone", source_ref, context, target=target)
    identity = {NAME_PROPERTY: target, OWNER_PROPERTY: owner}

    def intend(taken: str | None) -> None:
        # Before the first change: recovery destroys a half-made clone (issue 11).
        context.intent(UNDO_CLONE, f"clone {target} of {source}", datastore=store.datastore, name=target,
                       dataset=store.vm_dataset(target), source=src.dataset, snapshot=taken)

    result = clones.clone_tree(store.host, src.dataset, store.vm_dataset(target), snapshot=snapshot, mode=mode,
                               identity=identity, copy_timeout=store.copy_timeout, context=context,
                               before_changes=intend)
    if row is not None and vm_records_available(runtime) is None:
        try:
            new = register_vm(context, store.datastore, cloned_spec_data(row.spec, target), owner)
        except BaseException:
            store.remove_vm_dir(target)  # no clone without its record
            raise
        store.tag_vm(target, new.uuid, owner, new.spec.to_data())
        result.update(uuid=new.uuid, registered=True)
    else:
        result["registered"] = False
    context.log(f"{mode} clone of {source} as {target} from @{result['snapshot']}")
    failures = vm_after(runtime.pm, "clone", source_ref, context, target=target) if source_ref is not None else []
    return {**result, **hook_errors(failures)}


def import_vms_task(context: Any, datastore: str | None = None, register: bool = True) -> dict[str, Any]:
    """``zfs.import_vms``: find VMs on the datastore's pool by user properties; register them."""
    store = datastore_of(context.runtime, datastore)
    found = import_vms.discover(store.host, store)
    if register:
        found = import_vms.register(context, store, found)
    for vm in found:
        context.log(f"{vm.dataset}: {vm.status}" + (f" ({vm.detail})" if vm.detail else ""))
    return {"datastore": store.datastore, "vms": [vm.to_dict() for vm in found]}


def schedule_lock(arguments: dict[str, Any]) -> list[str]:
    """``dataset:<dataset>`` and ``vm:<name>`` for each VM in ``vms`` (``zfs.run_schedule``)."""
    dataset = arguments.get("dataset")
    locks = [f"dataset:{dataset}"] if isinstance(dataset, str) and dataset else []
    vms = arguments.get("vms") or []
    return locks + [f"vm:{name}" for name in vms if isinstance(name, str) and name]


def vm_lock(arguments: dict[str, Any]) -> list[str]:
    """``vm:<name>`` for a VM target, ``dataset:<name>`` for a dataset target."""
    locks = []
    for key in ("vm", "source", "target"):
        if isinstance(arguments.get(key), str) and arguments[key]:
            locks.append(f"vm:{arguments[key]}")
    if isinstance(arguments.get("dataset"), str) and arguments["dataset"]:
        locks.append(f"dataset:{arguments['dataset']}")
    return locks


def pool_lock(arguments: dict[str, Any]) -> list[str]:
    """``pool:<name>``."""
    pool = arguments.get("pool")
    return [f"pool:{pool}"] if isinstance(pool, str) and pool else []


KINDS: dict[str, tuple[Callable[..., Any], Callable[[dict[str, Any]], list[str]], str]] = {
    "zfs.init_pool": (init_pool, pool_lock, "create or adopt a pool with bHype's dataset layout"),
    "zfs.plan_init": (plan_init_task, lambda a: [], "show the commands zfs.init_pool would run (read-only)"),
    "zfs.check": (check, lambda a: [], "OpenZFS version, pool health, space and devices (read-only)"),
    "zfs.list_snapshots": (list_snapshots, lambda a: [], "a VM's snapshots with sizes (read-only)"),
    "zfs.list_holds": (list_holds, lambda a: [], "holds on one snapshot (read-only)"),
    "zfs.snapshot": (snapshot, vm_lock, "snapshot a VM's disks atomically (or a dataset tree)"),
    "zfs.rollback": (rollback, vm_lock, "roll a stopped VM back to a snapshot"),
    "zfs.destroy_snapshot": (destroy_snapshot, vm_lock, "destroy a snapshot (refused if held or cloned)"),
    "zfs.hold": (hold, vm_lock, "protect a snapshot with a hold"),
    "zfs.release": (release, vm_lock, "release a snapshot hold"),
    "zfs.clone": (clone, vm_lock, "clone a VM: linked (O(1)), full copy or promoted"),
    "zfs.import_vms": (import_vms_task, lambda a: [], "re-register VMs from a pool's user properties"),
    "zfs.run_schedules": (schedules.run_all, lambda a: [],
                          "take due scheduled snapshots and prune now (one sub-task per schedule)"),
    "zfs.run_schedule": (schedules.run_named, schedule_lock,
                         "run one snapshot schedule, holding its dataset's and VMs' locks"),
    "zfs.health": (health.health_task, lambda a: [], "pool health and capacity; notify changes"),
}
