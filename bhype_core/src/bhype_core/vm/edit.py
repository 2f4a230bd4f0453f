"""Task ``vm.edit``: change a VM's spec with a JSON merge patch (RFC 7396).

Which fields may change while the VM runs is explicit (:data:`LIVE_FIELDS`); every other
field needs the VM stopped (:data:`OFFLINE_FIELDS`) and an edit touching one is refused while
it runs. ``name``, ``uuid`` and ``template`` never change (the name is in paths, the hypervisor
instance name and locks; the UUID is the guest's SMBIOS identity). Disks may be added and
grown; removing one deletes its data, so it must be asked for (``allow_disk_removal``).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session

from bhype_core.db.session import session
from bhype_core.errors import Conflict, ValidationErrors
from bhype_core.spec import VMSpec, validate_spec
from bhype_core.units import human_size
from bhype_core.vm.access import is_admin_user
from bhype_core.vm.context import spec_context
from bhype_core.vm.firmware import ensure_nvram, nvram_name
from bhype_core.vm.hooks import hook_errors, vm_after, vm_before
from bhype_core.vm.models import VM, VMRef
from bhype_core.vm.records import get_vm
from bhype_core.vm.services import active_driver, open_datastore
from bhype_core.vm.undo import Undo

FIXED_FIELDS = ("name", "uuid", "template")
# Metadata only bHype reads: safe to change while the guest runs.
LIVE_FIELDS = ("description", "tags", "autostart", "owner")
# The hypervisor reads these at start: the VM must be stopped to change them.
OFFLINE_FIELDS = (
    "os_type", "cpus", "memory", "boot", "clock", "disks", "cdrom", "nics", "graphics",
    "serial", "rng", "cloud_init", "extra",
)  # fmt: skip


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7396 JSON merge patch: objects merge key by key, ``null`` removes a key, anything
    else (lists included) replaces."""
    if not isinstance(patch, Mapping):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, Mapping) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def changed_fields(old: VMSpec, new: VMSpec) -> list[str]:
    """Top-level spec fields whose value differs between ``old`` and ``new``."""
    before, after = old.to_data(), new.to_data()
    return sorted(key for key in set(before) | set(after) if before.get(key) != after.get(key))


def plan_edit(runtime: Any, db: Session, vm: VM, changes: Mapping[str, Any]) -> tuple[VMSpec, list[str]]:
    """Validate ``changes`` against ``vm`` and this host.

    :returns: the new spec and the fields it changes.
    :raises ValidationErrors: not an object, a fixed field, or an invalid result (dotted paths).
    """
    if not isinstance(changes, Mapping):
        raise ValidationErrors([("changes", "must be an object of spec fields")])
    errors = ValidationErrors()
    for key in FIXED_FIELDS:
        if key in changes and changes[key] != vm.spec.get(key):
            errors.add(key, "cannot be changed (create a new VM instead)")
    errors.raise_if_any()
    data = merge_patch(vm.spec, changes)
    store = open_datastore(runtime, vm.datastore)
    new = validate_spec(data, spec_context(runtime, db, store=store, exclude_id=vm.id))
    return new, changed_fields(vm.spec_model(), new)


def disk_changes(old: VMSpec, new: VMSpec) -> tuple[list[Any], list[tuple[Any, int]], list[Any]]:
    """``(added, grown, removed)`` disks by volume name; shrinking is refused.

    :raises ValidationErrors: a disk would shrink (path ``disks.<i>.size``).
    """
    before = {disk.volume: disk for disk in old.disks}
    after = {disk.volume: disk for disk in new.disks}
    errors = ValidationErrors()
    grown = []
    for index, disk in enumerate(new.disks):
        previous = before.get(disk.volume)
        if previous is not None and disk.size < previous.size:
            errors.add(f"disks.{index}.size", f"disk {disk.volume} is {human_size(previous.size)}; "
                       "shrinking would destroy data and is refused")
        elif previous is not None and disk.size > previous.size:
            grown.append((disk, previous.size))
        if getattr(disk, "source", None):
            # An image is written into a disk only when the VM is created; an edit would
            # silently add an empty disk instead.
            errors.add(f"disks.{index}.source", "a disk image can only be the source of a disk at VM creation")
    errors.raise_if_any()
    added = [disk for volume, disk in after.items() if volume not in before]
    removed = [disk for volume, disk in before.items() if volume not in after]
    return added, grown, removed


def _deleter(store: Any, vm_name: str, volume: str) -> Any:
    return lambda: store.delete_volume(vm_name, volume)


def edit_vm(context: Any, name: str, changes: dict[str, Any], allow_disk_removal: bool = False) -> dict[str, Any]:
    """Apply ``changes`` (a merge patch of spec fields) to VM ``name``.

    :raises Conflict: an offline field changes while the VM runs (names the fields).
    :raises ValidationErrors: invalid changes, or a disk removal not allowed explicitly.
    :returns: ``name``, ``changed`` (field names) and the new ``spec``.
    """
    runtime = context.runtime
    with session(runtime) as db:
        row = get_vm(db, name)  # who may: TaskKind.authorize (vm.access.may_edit)
        new, changed = plan_edit(runtime, db, row, changes)
    if {"owner", "extra"} & set(changed) and not is_admin_user(runtime, context.user):
        raise ValidationErrors([(field, "only admins may change it") for field in ("owner", "extra")
                                if field in changed])
    if not changed:
        context.progress(100, "nothing to change")
        return {"name": name, "changed": [], "spec": new.to_data()}
    old = row.spec_model()
    store = open_datastore(runtime, row.datastore)
    vm_dir = store.vm_dir(name)
    offline = [field for field in changed if field not in LIVE_FIELDS]
    if offline:
        status = active_driver(runtime).status(old, vm_dir)
        if status.active:
            raise Conflict(
                f"VM {name} is {status.state.value}; changing {', '.join(offline)} needs it stopped "
                f"(only {', '.join(LIVE_FIELDS)} can change while it runs)"
            )
    added, grown, removed = disk_changes(old, new)
    if removed and not allow_disk_removal:
        raise ValidationErrors([(
            "disks",
            f"removing {', '.join(d.volume for d in removed)} would delete its data; "
            "ask for it explicitly (allow_disk_removal)",
        )])
    before = VMRef.of(row, vm_dir)
    vm_before(runtime.pm, "edit", before, context, spec=new, changed=changed)
    context.log(f"editing VM {name}: {', '.join(changed)}")
    undo = Undo(context)
    try:
        for disk in added:
            context.check_cancelled()
            volume = store.create_volume(name, disk.volume, disk.size)
            undo.push(f"disk {volume.path}", _deleter(store, name, disk.volume))
            context.log(f"added disk {disk.volume} ({human_size(disk.size)})")
        for disk, size in grown:
            # Growing is not undone on a later failure: the guest sees unused space, no data is lost.
            store.grow_volume(name, disk.volume, disk.size)
            context.log(f"grew disk {disk.volume} from {human_size(size)} to {human_size(disk.size)}")
        driver = active_driver(runtime)
        nvram = ensure_nvram(new, store, driver)
        if nvram is not None:
            undo.push(f"NVRAM copy {nvram}", lambda: store.remove_vm_file(name, nvram_name(driver)))
        with session(runtime, write=True) as db:
            stored = get_vm(db, name)
            stored.spec = new.to_data()
            stored.owner = new.owner or stored.owner
            stored.updated = datetime.now(UTC)
            db.add(stored)
            after = VMRef.of(stored, vm_dir)
    except BaseException:
        undo.rollback()
        raise
    undo.discard()
    for disk in removed:  # last: only once the new spec is stored
        store.delete_volume(name, disk.volume)
        context.log(f"removed disk {disk.volume}")
    failures = vm_after(runtime.pm, "edit", after, context, spec=new, changed=changed)
    context.progress(100, "edited")
    return {"name": name, "changed": changed, "spec": new.to_data(), **hook_errors(failures)}
