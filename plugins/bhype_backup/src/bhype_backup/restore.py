"""Task ``backup.restore``: a point back onto this host, checked bit for bit.

* **As a new VM** (``as``: a new name): a new UUID and new MAC addresses (the spec's are
  dropped so ``register_vm`` generates them), disks created on the chosen datastore (directory
  or ZFS, whatever the source was), each file fetched with rsync and compared with the
  manifest's sha256 of every chunk, then the VM record (``register_vm``). Any failure removes
  the new VM's directory: no half VM is left.
* **Onto the same VM** (``as`` null): the VM must be stopped and ``confirm`` true (its disks are
  replaced). Each disk is fetched next to the current one and checked before it is renamed over
  it (a device disk, a zvol, is written in place with ``--write-devices``). A VM that was
  destroyed meanwhile is re-created with its old name and UUID.
* **One disk** (``disk``): only that disk of the same VM.

Whether a disk is a device (a zvol) is what the datastore says (``Volume.device``); the disk is
written and read back where the datastore lives, which may be the host ``[runner]`` reaches
over SSH (:mod:`bhype_backup.restore_disk`).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

from bhype_backup.endpoint import Endpoint
from bhype_backup.layout import MANIFEST
from bhype_backup.manifest import FileEntry, Manifest, parse_manifest
from bhype_backup.points import get_point
from bhype_backup.restore_disk import RestoreMismatch, fetch_checked, install_config, write_disk
from bhype_backup.targets import get_target
from bhype_core.plugin_api import (
    Conflict,
    NotFound,
    ValidationErrors,
    Volume,
    find_vm,
    hook_errors,
    is_running,
    open_datastore,
    register_vm,
    vm_after,
    vm_before,
    vm_ref,
    vm_settings,
)


def read_manifest(endpoint: Endpoint, point: Any) -> Manifest:
    """The point's manifest from the target, checked against the sha256 the row recorded."""
    import hashlib

    data = endpoint.read_file(f"{point.path}/{MANIFEST}")
    if hashlib.sha256(data).hexdigest() != point.manifest_sha256:
        raise RestoreMismatch(f"the manifest of point {point.id} on target {point.target} changed since it was written")
    return parse_manifest(data)


def _new_spec(manifest: Manifest, name: str) -> dict[str, Any]:
    """The backed-up spec as a new VM: new name, no UUID, no MACs (generated anew)."""
    spec = {key: value for key, value in manifest.spec.items() if key not in ("uuid", "owner")}
    spec["name"] = name
    spec["nics"] = [{k: v for k, v in nic.items() if k != "mac"} for nic in spec.get("nics", [])]
    graphics = dict(spec.get("graphics") or {})
    graphics.pop("password", None)
    spec["graphics"] = graphics
    return spec


def restore(context: Any, point: int, vm: str | None = None, confirm: bool = False, disk: str | None = None,
            datastore: str | None = None, **options: Any) -> dict[str, Any]:
    """Task ``backup.restore`` (``as`` arrives in ``options``: a Python keyword)."""
    new_name = options.pop("as", None)
    if options:
        raise ValidationErrors([(key, "unknown argument") for key in options])
    runtime = context.runtime
    row = get_point(runtime, point)
    target = get_target(runtime, row.target)
    if target.kind == "zfs":  # zfs send back: its own flow
        from bhype_backup.zfs_restore import restore_zfs_point

        return restore_zfs_point(context, row, target, new_name, confirm, disk, datastore)
    endpoint = Endpoint(runtime, target)
    manifest = read_manifest(endpoint, row)
    disks = restored_disks(manifest, point, disk, new_name)
    if new_name is not None:
        return _as_new_vm(context, row, endpoint, manifest, new_name, datastore)
    return _onto_same_vm(context, row, endpoint, manifest, disks, confirm, disk is not None)


def _config_target(entry: FileEntry) -> str | None:
    """The VM directory file a stored config file goes back to (spec and metadata do not)."""
    return None if entry.stored in ("config/spec.json", "config/metadata.json") else entry.original


def _disk_for(store: Any, name: str, entry: FileEntry, create: bool) -> tuple[Volume, bool]:
    """The disk ``entry`` goes to, and whether it was just created (a new zvol reads as zeros).
    An existing disk smaller than the backed-up one is grown first (shrinking is refused)."""
    assert entry.volume is not None
    if not create:
        try:
            volume = store.volume(name, entry.volume)
        except NotFound:  # the spec names it, the datastore lost it: made anew
            return store.create_volume(name, entry.volume, entry.size), True
        if volume.size < entry.size:
            volume = store.grow_volume(name, entry.volume, entry.size)
        return volume, False
    return store.create_volume(name, entry.volume, entry.size), True


def _restore_files(context: Any, store: Any, name: str, row: Any, endpoint: Endpoint, manifest: Manifest,
                   disks: list[FileEntry], *, create: bool, with_config: bool) -> list[str]:
    staging = Path(tempfile.mkdtemp(prefix=f"bhype-restore-{row.id}-"))
    restored = []
    try:
        total = len(disks) or 1
        for index, entry in enumerate(disks):
            assert entry.volume is not None
            context.check_cancelled()
            volume, fresh = _disk_for(store, name, entry, create)
            write_disk(context, endpoint, row, entry, volume, staging, fresh=fresh, label=f"disk {entry.volume}",
                       start=5 + 85 * index / total, span=85 / total)
            restored.append(entry.volume)
        if with_config:
            for entry in manifest.files:
                filename = _config_target(entry) if entry.role == "config" else None
                if filename is None:
                    continue
                local = staging / filename
                fetch_checked(context, endpoint, row, entry, local, label=filename, start=90, span=5)
                install_config(context, store, name, local, entry, filename)
                restored.append(filename)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return restored


def _as_new_vm(context: Any, row: Any, endpoint: Endpoint, manifest: Manifest, name: str,
               datastore: str | None) -> dict[str, Any]:
    runtime = context.runtime
    if find_vm(runtime, name) is not None:
        raise ValidationErrors([("as", f"a VM named {name!r} exists")])
    store_name = datastore or manifest.vm.get("datastore") or vm_settings(runtime).default_datastore
    store = open_datastore(runtime, store_name)
    owner = str(context.user or manifest.vm.get("owner"))
    disks = [f for f in manifest.files if f.role == "disk"]
    store.create_vm_dir(name)
    try:
        restored = _restore_files(context, store, name, row, endpoint, manifest, disks, create=True,
                                  with_config=True)
        ref = register_vm(context, store_name, _new_spec(manifest, name), owner)
    except BaseException:
        store.remove_vm_dir(name)
        context.log(f"restore failed: the new VM {name} was removed again", "error")
        raise
    context.log(f"restored point {row.id} as new VM {name} ({ref.uuid}) in datastore {store_name}")
    context.progress(100, f"restored as {name}")
    return {"point": row.id, "vm": name, "uuid": ref.uuid, "datastore": store_name, "restored": restored,
            "new_vm": True}


def _onto_same_vm(context: Any, row: Any, endpoint: Endpoint, manifest: Manifest, disks: list[FileEntry],
                  confirm: bool, single: bool) -> dict[str, Any]:
    runtime = context.runtime
    name = manifest.vm["name"]
    vm_row = same_vm_row(runtime, manifest, row.id, confirm)
    if vm_row is None:  # destroyed meanwhile: re-create it with its name and UUID
        if single:
            raise NotFound(f"VM {name} does not exist any more: restore the whole point")
        store_name = manifest.vm.get("datastore") or vm_settings(runtime).default_datastore
        store = open_datastore(runtime, store_name)
        store.create_vm_dir(name)
        try:
            restored = _restore_files(context, store, name, row, endpoint, manifest, disks, create=True,
                                      with_config=True)
            spec = {k: v for k, v in manifest.spec.items() if k != "owner"}
            ref = register_vm(context, store_name, spec, str(manifest.vm.get("owner") or context.user))
        except BaseException:
            store.remove_vm_dir(name)
            raise
        return {"point": row.id, "vm": name, "uuid": ref.uuid, "restored": restored, "new_vm": False,
                "recreated": True}
    if is_running(runtime, name):
        raise Conflict(f"VM {name} is running: stop it before restoring onto it")
    ref = vm_ref(runtime, vm_row)
    vm_before(runtime.pm, "restore", ref, context, source=f"point {row.id} on {row.target}")
    store = open_datastore(runtime, vm_row.datastore)
    current = {d.volume or f"disk{i}" for i, d in enumerate(ref.spec.disks)}
    missing = [f.volume for f in disks if f.volume not in current]
    if missing:
        raise Conflict(f"VM {name} has no disk {', '.join(map(str, missing))} any more: restore as a new VM")
    restored = _restore_files(context, store, name, row, endpoint, manifest, disks, create=False,
                              with_config=not single)
    context.log(f"restored point {row.id} onto VM {name}: {', '.join(restored)}")
    context.progress(100, f"restored onto {name}")
    failures = vm_after(runtime.pm, "restore", ref, context, source=f"point {row.id} on {row.target}")
    return {"point": row.id, "vm": name, "uuid": vm_row.uuid, "restored": restored, "new_vm": False,
            **hook_errors(failures)}


def restored_disks(manifest: Any, point: Any, disk: str | None, new_name: str | None) -> list[Any]:
    """The manifest's disk entries a restore writes: all of them, or only ``disk``.

    :raises ValidationErrors: the point has no such disk, or a single disk is asked for a new VM.
    """
    disks = [f for f in manifest.files if f.role == "disk"]
    if disk is not None:
        disks = [f for f in disks if f.volume == disk]
        if not disks:
            raise ValidationErrors([("disk", f"point {point} has no disk {disk!r}")])
        if new_name is not None:
            raise ValidationErrors([("disk", "a single disk is restored onto the same VM (leave 'as' out)")])
    return disks


def same_vm_row(runtime: Any, manifest: Any, point: Any, confirm: bool) -> Any:
    """The record of the VM a point is restored over (``None`` if it was destroyed meanwhile).

    :raises ValidationErrors: not confirmed (its disks are replaced).
    :raises Conflict: the name belongs to another VM now.
    """
    name = manifest.vm["name"]
    if not confirm:
        raise ValidationErrors([("confirm", f"restoring point {point} replaces the disks of VM {name}: "
                                            "confirm it (--yes), or restore it as a new VM (--as NAME)")])
    vm_row = find_vm(runtime, name)
    if vm_row is not None and vm_row.uuid != manifest.vm["uuid"]:
        raise Conflict(f"VM {name} is another VM now (UUID {vm_row.uuid}): restore as a new VM")
    return vm_row
