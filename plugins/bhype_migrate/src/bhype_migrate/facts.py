"""What this host tells a peer that wants to move a VM here: its hypervisor, datastores and
space, switches, templates, and whether a given VM would fit (names, UUID, MACs, switches,
features, space). Answered by the API process from the database and ``statvfs``: no host
command runs, so a peer's ``test`` and a dry run change nothing here."""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from bhype_core.plugin_api import (
    VMSpec,
    active_driver,
    detect_platform,
    find_vm,
    list_switches,
    list_vms,
    local_host_name,
    open_datastore,
    session,
    template_catalog,
    vm_settings,
)
from bhype_migrate import __version__

INCOMING_PREFIX = ".bhype-incoming-"


def datastore_root(runtime: Any, name: str) -> Path | None:
    """The directory a directory datastore keeps VMs under (``None`` for other backends)."""
    store = open_datastore(runtime, name)
    root = getattr(store, "root", None)
    return Path(root) if getattr(store, "name", "") == "directory" and root is not None else None


def free_bytes(path: Path) -> int | None:
    """Free bytes for root on the file system holding ``path`` (its nearest existing parent)."""
    while not path.exists() and path != path.parent:
        path = path.parent
    try:
        info = os.statvfs(path)
    except OSError:
        return None
    return info.f_bavail * info.f_frsize


def zfs_layout(runtime: Any, name: str) -> tuple[str | None, str | None]:
    """A ZFS datastore's root dataset and disk type (``zvol``/``file``), ``(None, None)`` for
    other backends: what a peer needs to send a VM's dataset tree here (``--transport zfs``)."""
    store = open_datastore(runtime, name)
    if getattr(store, "name", "") != "zfs":
        return None, None
    return getattr(store, "dataset", None), getattr(getattr(store, "options", None), "disk_type", None)


def datastores(runtime: Any) -> list[dict[str, Any]]:
    """Each configured datastore: name, backend, root (directory backend) and free bytes;
    dataset and disk type for ZFS."""
    found = []
    for name, entry in vm_settings(runtime).datastores.items():
        root = datastore_root(runtime, name) if entry.backend == "directory" else None
        dataset, disk_type = zfs_layout(runtime, name) if entry.backend == "zfs" else (None, None)
        found.append({"name": name, "backend": entry.backend, "root": str(root) if root else None,
                      "free": free_bytes(root) if root else None, "dataset": dataset, "disk_type": disk_type})
    return found


def host_facts(runtime: Any) -> dict[str, Any]:
    """The ``GET /api/v1/migrate/info`` answer."""
    driver = active_driver(runtime)
    with session(runtime) as db:
        switches = sorted(switch.name for switch in list_switches(db))
    settings = vm_settings(runtime)
    return {
        "host": socket.gethostname(),
        "migrate_version": __version__,
        "platform": detect_platform(getattr(runtime.settings.core, "platform", None)),
        "driver": driver.name,
        "capabilities": sorted(str(c) for c in driver.capabilities),
        "default_datastore": settings.default_datastore,
        "datastores": datastores(runtime),
        "switches": switches,
        "templates": template_catalog(runtime).names(),
    }


def check_fit(runtime: Any, spec_data: dict[str, Any], datastore: str | None, size: int,
              within_group: bool = False, transport: str = "rsync") -> dict[str, Any]:
    """Whether a VM with ``spec_data`` (``size`` bytes of files) could be received here:
    ``problems`` as ``[path, message]`` pairs (empty when it fits) and the datastore chosen
    (its ``root`` for rsync, its ``dataset`` for ``transport`` zfs).

    ``within_group``: the move comes from another host of this group, whose one record of the
    VM (same name and UUID, on another host) is not a clash: it is the VM being moved."""
    problems: list[list[str]] = []
    settings = vm_settings(runtime)
    datastore = datastore or settings.default_datastore
    spec = VMSpec.model_validate(spec_data)
    here = local_host_name(runtime)
    taken = {vm.name: vm for vm in list_vms(runtime)}
    moving = find_vm(runtime, spec.name) if within_group else None
    if moving is not None and str(moving.uuid).lower() == str(spec.uuid).lower() and moving.host != here:
        del taken[spec.name]  # the group's one record of the VM being moved here
    uuids = {str(vm.uuid).lower(): vm.name for vm in taken.values()}
    if spec.name in taken:
        problems.append(["name", f"a VM named {spec.name!r} exists on this host already"])
    if str(spec.uuid).lower() in uuids:
        problems.append(["uuid", f"VM {uuids[str(spec.uuid).lower()]!r} here has UUID {spec.uuid} already"])
    with session(runtime) as db:  # this host's switches (a group shares one table)
        switches = {switch.name for switch in list_switches(db) if switch.host in (here, "")}
    for index, nic in enumerate(spec.nics):
        if nic.switch and nic.switch not in switches:
            problems.append([f"nics.{index}.switch", f"switch {nic.switch!r} does not exist on this host"])
    driver = active_driver(runtime)
    for path, message in driver.capability_check(spec):
        problems.append([path, f"incompatible hypervisor: {message}"])
    root = dataset = None
    if datastore not in settings.datastores:
        problems.append(["datastore", f"no datastore {datastore!r} here"])
    elif transport == "zfs":
        # Space is not checked here (this process runs no zfs command): a receive that runs
        # out of space fails and zfs-receive(8) leaves nothing of it; the move rolls back.
        dataset, _ = zfs_layout(runtime, datastore)
        if dataset is None:
            problems.append(["datastore", f"datastore {datastore!r} is not ZFS storage (zfs receive needs one)"])
        elif runtime_vm_dataset_taken(runtime, datastore, spec.name):
            problems.append(["name", f"the dataset of a VM named {spec.name!r} exists on this host already"])
    else:
        root = datastore_root(runtime, datastore)
        if root is None:
            problems.append(["datastore", f"datastore {datastore!r} is not directory storage (rsync needs one)"])
        else:
            free = free_bytes(root)
            if free is not None and free < size:
                problems.append(["space", f"datastore {datastore!r} has {free} bytes free, the VM needs {size}"])
    return {"problems": problems, "datastore": datastore, "root": str(root) if root else None, "dataset": dataset}


def runtime_vm_dataset_taken(runtime: Any, datastore: str, name: str) -> bool:
    """Whether VM ``name``'s dataset is mounted here already (its mountpoint exists: checked
    without a zfs command, which this process may not run). The receive refuses it anyway."""
    return os.path.lexists(Path(open_datastore(runtime, datastore).vm_dir(name)))
