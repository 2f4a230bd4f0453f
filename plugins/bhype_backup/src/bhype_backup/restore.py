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
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from bhype_backup.endpoint import Endpoint
from bhype_backup.layout import MANIFEST
from bhype_backup.manifest import CHUNK_SIZE, FileEntry, Manifest, check_file, parse_manifest
from bhype_backup.points import get_point
from bhype_backup.targets import get_target
from bhype_core.plugin_api import (
    BhypeError,
    Conflict,
    NotFound,
    ValidationErrors,
    find_vm,
    hook_errors,
    is_running,
    open_datastore,
    register_vm,
    rsync_argv,
    run_rsync,
    task_progress,
    vm_after,
    vm_before,
    vm_ref,
    vm_settings,
)


class RestoreMismatch(BhypeError):
    """A restored file does not match the manifest (the target changed it, or it is damaged)."""

    code = "restore_mismatch"
    http_status = 409


def read_manifest(endpoint: Endpoint, point: Any) -> Manifest:
    """The point's manifest from the target, checked against the sha256 the row recorded."""
    import hashlib

    data = endpoint.read_file(f"{point.path}/{MANIFEST}")
    if hashlib.sha256(data).hexdigest() != point.manifest_sha256:
        raise RestoreMismatch(f"the manifest of point {point.id} on target {point.target} changed since it was written")
    return parse_manifest(data)


def _fetch(context: Any, endpoint: Endpoint, point: Any, entry: FileEntry, destination: Path, *,
           device: bool, label: str, start: float, span: float) -> None:
    """rsync one stored file to ``destination`` (a new file, or a device written in place) and
    check every chunk against the manifest."""
    options = endpoint.rsync_options()
    options.pop("windows", None)  # the local side is POSIX: modes come from the manifest
    source = endpoint.url(f"{point.path}/{entry.stored}", directory=False)
    if device:
        argv = rsync_argv([source], str(destination), **options, inplace=True, write_devices=True, recursive=False)
    else:
        argv = rsync_argv([source], str(destination), **options, inplace=False, sparse=True, recursive=False)
    run_rsync(context.runner, argv, on_progress=task_progress(context, label, start=start, span=span),
              cancel=context.cancel_requested, timeout=7 * 24 * 3600)
    bad = check_file(destination, entry) if not device else _check_device(destination, entry)
    if bad:
        raise RestoreMismatch(f"{label}: {len(bad)} chunk(s) differ from the manifest (first at chunk {bad[0]})")
    if not device:
        os.chmod(destination, int(entry.mode, 8))


def _check_device(path: Path, entry: FileEntry, chunk_size: int = CHUNK_SIZE) -> list[int]:
    """Compare the first ``entry.size`` bytes of a device with the manifest's chunks."""
    import hashlib

    bad = []
    with path.open("rb") as handle:
        for index, expected in enumerate(entry.chunks):
            block = handle.read(min(chunk_size, entry.size - index * chunk_size))
            if hashlib.sha256(block).hexdigest() != expected:
                bad.append(index)
    return bad


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


def _restore_files(context: Any, store: Any, name: str, row: Any, endpoint: Endpoint, manifest: Manifest,
                   disks: list[FileEntry], *, create: bool, with_config: bool) -> list[str]:
    staging = Path(tempfile.mkdtemp(prefix=f"bhype-restore-{row.id}-"))
    restored = []
    try:
        total = len(disks) or 1
        for index, entry in enumerate(disks):
            assert entry.volume is not None
            if create:
                store.create_volume(name, entry.volume, entry.size)
            path = Path(store.volume_path(name, entry.volume))
            device = path.exists() and not path.is_file()
            target = path if device else path.with_name(f".{path.name}.restore")
            _fetch(context, endpoint, row, entry, target, device=device, label=f"disk {entry.volume}",
                   start=5 + 85 * index / total, span=85 / total)
            if not device:
                os.replace(target, path)
            restored.append(entry.volume)
        if with_config:
            for entry in manifest.files:
                filename = _config_target(entry) if entry.role == "config" else None
                if filename is None:
                    continue
                local = staging / filename
                _fetch(context, endpoint, row, entry, local, device=False, label=filename, start=90, span=5)
                store.install_vm_file(name, local, filename, mode=int(entry.mode, 8))
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
