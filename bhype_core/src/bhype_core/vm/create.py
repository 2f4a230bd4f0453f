"""Task ``vm.create``: template + overrides → validated spec → directory, disks, NVRAM, row.

Every step registers its reversal; any failure (a plugin's veto, a disk that cannot be
created, a missing firmware template, a clash on insert, a cancel) rolls back everything done
so far, newest first: no orphan disk, directory, NVRAM file or database row. ``after_create``
only observes: a plugin raising there is recorded on the task (``hook_errors``) and the VM
stays created.

A crash of the worker cannot run that rollback, so each step is also written to the task's
undo journal *before* it runs (``context.intent``, :mod:`bhype_core.vm.intents`): recovery of
the interrupted task removes what it made, and the name can be used again (issue 11).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from bhype_core.db.session import session
from bhype_core.disk_images import ImageInfo, convert_image, inspect_image
from bhype_core.errors import BhypeError, ValidationErrors
from bhype_core.hosts.settings import local_host_name
from bhype_core.units import human_size
from bhype_core.vm.context import build_create_spec
from bhype_core.vm.firmware import create_nvram, nvram_name
from bhype_core.vm.hooks import hook_errors, vm_after, vm_before
from bhype_core.vm.intents import REMOVE_DIR, REMOVE_ROW, REMOVE_VOLUME
from bhype_core.vm.models import VM, VMRef
from bhype_core.vm.services import active_driver, open_datastore
from bhype_core.vm.settings import vm_settings
from bhype_core.vm.undo import Undo


def checkpoint(context: Any) -> None:
    """A safe point to honour a cancel request (the task queue's ``check_cancelled``)."""
    check = getattr(context, "check_cancelled", None)
    if check is not None:
        check()


def create_vm(
    context: Any,
    name: str,
    template: str | None = None,
    overrides: dict[str, Any] | None = None,
    owner: str | None = None,
    datastore: str | None = None,
) -> dict[str, Any]:
    """Create VM ``name`` from ``template`` plus ``overrides`` in ``datastore``.

    :param name: the VM's name (also in the lock ``vm:<name>``).
    :param owner: who owns it (default: the submitting user).
    :returns: ``name``, ``id``, ``uuid``, ``datastore``, ``vm_dir`` and the disk paths.
    :raises ValidationErrors: bad spec or a plugin's veto (nothing created).
    """
    runtime = context.runtime
    # Who may create a VM for whom was checked before this runs (vm.access.may_create).
    owner = owner or context.user
    if not owner:
        raise ValidationErrors([("owner", "a VM needs an owner (no user submitted this task)")])
    datastore = datastore or vm_settings(runtime).default_datastore
    store = open_datastore(runtime, datastore)
    context.progress(5, "validating")
    data = dict(overrides or {})
    data["name"] = name
    with Session(runtime.engine) as db:
        spec = build_create_spec(runtime, db, template, data, owner, store)
    context.log(f"creating VM {spec.name} ({spec.cpus.count} vCPU, {human_size(spec.memory)}) in {datastore}")
    images = inspect_sources(context, spec, store)

    undo = Undo(context)
    try:
        vm_dir = store.vm_dir(spec.name)
        ref = VMRef(spec.name, str(spec.uuid), owner, datastore, spec, vm_dir)
        context.progress(10, "asking plugins")
        vm_before(runtime.pm, "create", ref, context)
        checkpoint(context)

        context.progress(20, "creating the VM directory")
        context.intent(REMOVE_DIR, f"VM directory {vm_dir}", datastore=datastore, name=spec.name)
        store.create_vm_dir(spec.name)
        undo.push(f"VM directory {vm_dir}", lambda: store.remove_vm_dir(spec.name))

        disks = []
        for index, disk in enumerate(spec.disks):
            checkpoint(context)
            context.progress(20 + 60 * index / max(1, len(spec.disks)), f"creating disk {disk.volume}")
            name = disk.volume or f"disk{index}"  # validate_spec names every disk
            context.intent(REMOVE_VOLUME, f"disk {name} of VM {spec.name}", datastore=datastore,
                           name=spec.name, volume=name)
            volume = store.create_volume(spec.name, name, disk.size)
            undo.push(f"disk {volume.path}", _deleter(store, spec.name, name))
            context.log(f"disk {name}: {human_size(disk.size)} sparse at {volume.path}")
            if index in images:
                source, info = images[index]
                context.progress(20 + 60 * index / max(1, len(spec.disks)), f"writing image {disk.source}")
                convert_image(context.runner, source, info, volume.path)
                context.log(f"disk {name}: image {disk.source} ({info.format}, "
                            f"{human_size(info.virtual_size)}) written as raw")
            disks.append(str(volume.path))

        checkpoint(context)
        context.progress(85, "creating the UEFI variable store")
        driver = active_driver(runtime)
        nvram = create_nvram(spec, store, driver)
        if nvram is not None:
            undo.push(f"NVRAM copy {nvram}", lambda: store.remove_vm_file(spec.name, nvram_name(driver)))
            context.log(f"UEFI variable store copied to {nvram}")

        context.progress(90, "recording the VM")
        context.intent(REMOVE_ROW, f"database row of VM {spec.name}", uuid=str(spec.uuid), name=spec.name)
        row = _insert(runtime, spec, owner, datastore)
        undo.push(f"database row of {spec.name}", lambda: _delete(runtime, row.id))
        ref = VMRef.of(row, vm_dir)
    except BaseException as exc:
        failures = undo.rollback()
        if failures:
            raise BhypeError(
                f"creating VM {spec.name} failed ({exc}) and could not be fully rolled back: "
                + "; ".join(failures)
            ) from exc
        raise
    undo.discard()
    context.progress(95, "telling plugins")
    failures = vm_after(runtime.pm, "create", ref, context)
    context.progress(100, "created")
    return {
        "name": row.name,
        "id": row.id,
        "uuid": row.uuid,
        "datastore": datastore,
        "vm_dir": str(vm_dir),
        "disks": disks,
        **hook_errors(failures),
    }


def inspect_sources(context: Any, spec: Any, store: Any) -> dict[int, tuple[Path, ImageInfo]]:
    """``qemu-img info`` of every disk's source image, by disk index, before anything is
    created: a disk smaller than its image's virtual size is refused at ``disks.N.size``.

    :raises ValidationErrors: a disk too small for its image (nothing created yet).
    """
    images: dict[int, tuple[Path, ImageInfo]] = {}
    errors = ValidationErrors()
    for index, disk in enumerate(spec.disks):
        if disk.source is None:
            continue
        path = store.iso_path(disk.source)
        info = inspect_image(context.runner, path, disk.source)
        if info.virtual_size > disk.size:
            errors.add(f"disks.{index}.size", f"must be at least {human_size(info.virtual_size)}, "
                                              f"the virtual size of image {disk.source}")
        images[index] = (path, info)
    errors.raise_if_any()
    return images


def stored_spec(spec: Any) -> dict[str, Any]:
    """The spec as the VM row keeps it: a disk's ``source`` only matters while creating it
    (an edit must not depend on the image still being in the library)."""
    data = spec.to_data()
    for disk in data.get("disks", []):
        disk.pop("source", None)
    return data


def _deleter(store: Any, vm_name: str, volume: str) -> Any:
    return lambda: store.delete_volume(vm_name, volume)


def _insert(runtime: Any, spec: Any, owner: str, datastore: str) -> VM:
    row = VM(
        name=spec.name,
        uuid=str(spec.uuid),
        owner=owner,
        datastore=datastore,
        spec=stored_spec(spec),
        host=local_host_name(runtime),  # the worker's host runs it (issue 22)
    )
    try:
        with session(runtime) as db:
            db.add(row)
    except IntegrityError:
        # Another create with the same name or UUID committed first (the API and the lock
        # make this rare; the unique constraints make it impossible to miss).
        raise ValidationErrors([("name", f"a VM named {spec.name!r} already exists")]) from None
    return row


def _delete(runtime: Any, vm_id: int | None) -> None:
    with session(runtime, write=True) as db:
        row = db.exec(select(VM).where(VM.id == vm_id)).first()
        if row is not None:
            db.delete(row)
