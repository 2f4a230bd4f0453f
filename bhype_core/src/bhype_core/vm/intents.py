"""Undo actions for VM tasks, replayed by recovery when ``vm.create``/``vm.destroy`` were cut off.

``vm.create`` records an intent before each step (directory, each disk, the row); recovery of
an interrupted create removes them newest first, so the name can be used again. Recovery is
conservative: a directory or disk is left alone when a VM record of that name exists in the
datastore (it belongs to that VM, not to the interrupted create), and the row is removed only
by the UUID the interrupted create generated.

``vm.destroy`` deletes data, which cannot be undone; its intent, recorded just before the
first removal, makes recovery *finish* the destroy instead (the user asked for it, the VM was
stopped and no plugin vetoed), so no disk or directory is left without a row naming it.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import select

from bhype_core.db.session import session
from bhype_core.errors import NotFound
from bhype_core.registry import UndoAction
from bhype_core.vm.models import VM
from bhype_core.vm.services import open_datastore

REMOVE_ROW = "vm.remove_row"
REMOVE_VOLUME = "vm.remove_volume"
REMOVE_DIR = "vm.remove_dir"
FINISH_DESTROY = "vm.finish_destroy"


def _owned(runtime: Any, datastore: str, name: str) -> bool:
    """Whether a VM record named ``name`` lives in ``datastore`` (its files are not ours)."""
    with session(runtime) as db:
        return db.exec(select(VM.id).where(VM.name == name, VM.datastore == datastore)).first() is not None


def remove_row(context: Any, uuid: str, name: str) -> str | None:
    """Delete the VM row the interrupted create inserted (found by its UUID only)."""
    with session(context.runtime, write=True) as db:
        row = db.exec(select(VM).where(VM.uuid == uuid)).first()
        if row is None:
            return None
        db.delete(row)
    return f"database row of VM {name}"


def remove_volume(context: Any, datastore: str, name: str, volume: str) -> str | None:
    """Delete disk ``volume`` of VM ``name`` unless a VM record of that name owns it."""
    if _owned(context.runtime, datastore, name):
        context.log(f"disk {volume} of {name} kept: a VM record named {name} owns it", level="warning")
        return None
    store = open_datastore(context.runtime, datastore)
    try:
        path = store.volume(name, volume).path
    except NotFound:
        return None
    store.delete_volume(name, volume)
    return f"disk {path}"


def remove_dir(context: Any, datastore: str, name: str) -> str | None:
    """Remove VM ``name``'s directory unless a VM record of that name owns it."""
    if _owned(context.runtime, datastore, name):
        context.log(f"directory of {name} kept: a VM record named {name} owns it", level="warning")
        return None
    store = open_datastore(context.runtime, datastore)
    path = store.vm_dir(name)
    return f"VM directory {path}" if store.remove_vm_dir(name) else None


def finish_destroy(context: Any, datastore: str, name: str, uuid: str, volumes: list[str],
                   keep_disks: bool = False) -> str | None:
    """Finish an interrupted ``vm.destroy`` of the VM with ``uuid``: its disks (unless kept),
    its directory (or all but the kept disks) and its row."""
    runtime = context.runtime
    with session(runtime) as db:
        row = db.exec(select(VM).where(VM.uuid == uuid)).first()
    if row is None:
        return None  # the destroy got to the end (the row goes last)
    store = open_datastore(runtime, datastore)
    removed = []
    if keep_disks:
        removed += store.clear_vm_dir(name, volumes)
    else:
        for volume in volumes:
            try:
                path = store.volume(name, volume).path
                store.delete_volume(name, volume)
                removed.append(str(path))
            except NotFound:
                pass
        if store.remove_vm_dir(name):
            removed.append(str(store.vm_dir(name)))
    remove_row(context, uuid, name)
    return f"finished destroying VM {name}: removed {', '.join(removed) or 'no files'} and its row"


UNDO_ACTIONS = (
    UndoAction(REMOVE_ROW, remove_row, "delete the row an interrupted vm.create inserted"),
    UndoAction(REMOVE_VOLUME, remove_volume, "delete a disk an interrupted vm.create made"),
    UndoAction(REMOVE_DIR, remove_dir, "remove the directory an interrupted vm.create made"),
    UndoAction(FINISH_DESTROY, finish_destroy, "finish an interrupted vm.destroy"),
)
