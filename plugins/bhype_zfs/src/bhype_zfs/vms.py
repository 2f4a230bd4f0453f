"""Where a VM's datasets are, and whether it runs: the plugin's only contact with the core's VM layer.

Tasks name their target either as ``vm`` (a VM registered in ``core_vm`` whose datastore uses
the ``zfs`` backend) or as ``dataset`` (any tree below bHype's root dataset, e.g. a VM found on
an imported pool before ``import-vms``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bhype_core.plugin_api import Conflict, NotFound, ValidationErrors, VMRef, vm_ref
from bhype_zfs.names import check_dataset
from bhype_zfs.storage import ZfsStorage
from bhype_zfs.tool import ZfsHost, zfs_host, zfs_settings


@dataclass(frozen=True)
class Target:
    """A snapshot/rollback/clone target: the dataset tree, and the VM it belongs to if known."""

    dataset: str
    vm: str | None = None
    store: ZfsStorage | None = None


def find_vm_row(runtime: Any, name: str) -> Any:
    """The ``core_vm`` row of VM ``name`` (``None`` when there is none)."""
    from bhype_core.plugin_api import find_vm

    return find_vm(runtime, name)


def datastore_of(runtime: Any, name: str | None) -> ZfsStorage:
    """The ZFS datastore called ``name`` (``None``: the first datastore using the zfs backend).

    :raises ValidationErrors: it does not exist or is not a ZFS datastore (``datastore``).
    """
    from bhype_core.plugin_api import open_datastore, vm_settings

    if name is None:
        configured = vm_settings(runtime).datastores
        name = next((n for n, d in configured.items() if d.backend == "zfs"), None)
        if name is None:
            raise ValidationErrors([("datastore", "no datastore uses backend 'zfs' ([vm.datastores.<name>])")])
    store = open_datastore(runtime, name)
    if not isinstance(store, ZfsStorage):
        raise ValidationErrors([("datastore", f"datastore {name!r} does not use the zfs backend")])
    return store


def resolve(runtime: Any, vm: str | None = None, dataset: str | None = None) -> Target:
    """The dataset tree a task acts on, from exactly one of ``vm`` or ``dataset``.

    :raises ValidationErrors: neither or both given, a bad dataset, a dataset outside bHype's
        root, or a VM whose datastore is not ZFS.
    :raises NotFound: no such VM.
    """
    if (vm is None) == (dataset is None):
        raise ValidationErrors([("vm", "name exactly one of vm or dataset")])
    if dataset is not None:
        check_dataset(dataset)
        root = zfs_settings(runtime).root_dataset
        if root and not (dataset == root or dataset.startswith(root + "/")):
            raise ValidationErrors([("dataset", f"{dataset} is outside bHype's root dataset {root}")])
        return Target(dataset)
    row = find_vm_row(runtime, vm or "")
    if row is None:
        raise NotFound(f"no VM named {vm!r}")
    store = datastore_of(runtime, row.datastore)
    return Target(store.vm_dataset(row.name), row.name, store)


def is_running(runtime: Any, vm: str) -> bool:
    """Whether the hypervisor runs VM ``vm`` now (the driver's answer, not the cached state).

    A VM without a ``core_vm`` row is not run by bHype: ``False``.
    """
    from bhype_core.plugin_api import is_running as core_is_running

    return core_is_running(runtime, vm)


def require_stopped(runtime: Any, target: Target, running: Any = None) -> None:
    """:raises Conflict: the target's VM runs (``running(vm) -> bool`` overrides the check)."""
    if target.vm is None:
        return
    check = running or (lambda name: is_running(runtime, name))
    if check(target.vm):
        raise Conflict(f"VM {target.vm} is running: stop it before rolling back its disks")


def target_ref(runtime: Any, target: Target) -> VMRef | None:
    """The :class:`VMRef` lifecycle hooks receive for a VM target (``None`` for a dataset)."""
    if target.vm is None:
        return None
    row = find_vm_row(runtime, target.vm)
    return vm_ref(runtime, row) if row is not None else None


def host_for(runtime: Any, target: Target) -> ZfsHost:
    """The ZFS host commands for ``target`` go to."""
    return target.store.host if target.store is not None else zfs_host(runtime)
