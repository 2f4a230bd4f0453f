"""Task ``vm.destroy``: remove a stopped VM's disks (unless kept), files and database row.

Deleting data cannot be undone, so destroy is made safe the other way round: vetoes and
checks come first (nothing changed yet), the row is deleted last, and every removal treats
"already gone" as done. A destroy that fails part-way leaves the row in place, marked, still
owning whatever remains; running it again finishes the job. No disk, NVRAM file, tap or
directory is ever left without a row that names it. A destroy cut off by a crash of the worker
is finished by recovery (its intent is written just before the first removal,
:mod:`bhype_core.vm.intents`), so the name is free again after a restart (issue 11).
"""

from __future__ import annotations

from typing import Any

from sqlmodel import select

from bhype_core import failpoints
from bhype_core.db.session import session
from bhype_core.errors import BhypeError, Conflict, NotFound
from bhype_core.vm.hooks import hook_errors, vm_after, vm_before
from bhype_core.vm.intents import FINISH_DESTROY
from bhype_core.vm.models import VM, VMRef
from bhype_core.vm.nics import release_nics
from bhype_core.vm.records import get_vm, set_state
from bhype_core.vm.services import active_driver, open_datastore


def destroy_vm(context: Any, name: str, keep_disks: bool = False) -> dict[str, Any]:
    """Destroy stopped VM ``name``.

    :param keep_disks: keep the disk images (left in the VM's directory, listed in the result);
        everything else (NVRAM copy, logs, sockets, the row) is removed.
    :raises Conflict: the VM is running (stop it first).
    :returns: ``name``, ``removed`` (paths) and ``kept`` (disk paths).
    """
    runtime = context.runtime
    with session(runtime) as db:
        row = get_vm(db, name)  # who may: TaskKind.authorize (vm.access.owns_vm)
    store = open_datastore(runtime, row.datastore)
    ref = VMRef.of(row, store.vm_dir(row.name))
    context.progress(5, "checking the current state")
    driver = active_driver(runtime)
    status = driver.status(ref.spec, ref.vm_dir)
    if status.active:
        raise Conflict(f"VM {name} is {status.state.value}: stop it before destroying it")
    vm_before(runtime.pm, "destroy", ref, context)
    context.check_cancelled()
    release_nics(runtime, driver, ref.spec, ref.vm_dir, context.log)  # taps a crash left plugged

    removed: list[str] = []
    kept: list[str] = []
    context.intent(FINISH_DESTROY, f"destroy of VM {name}", datastore=row.datastore, name=name, uuid=row.uuid,
                   volumes=[disk.volume or "" for disk in ref.spec.disks], keep_disks=keep_disks)
    try:
        for index, disk in enumerate(ref.spec.disks):
            volume = disk.volume or ""
            context.progress(10 + 60 * index / max(1, len(ref.spec.disks)), f"disk {volume}")
            if keep_disks:
                try:
                    kept.append(str(store.volume(name, volume).path))
                except NotFound:
                    pass
                continue
            try:
                path = store.volume(name, volume).path
                store.delete_volume(name, volume)
                removed.append(str(path))
                context.log(f"deleted disk {path}")
                failpoints.reached("vm.destroy:disk-deleted")  # a crash between two disks
            except NotFound:
                context.log(f"disk {volume} was already gone")
        context.progress(75, "removing the VM directory")
        # Through the backend: the directory may be a dataset on the host the runner reaches.
        if keep_disks:
            removed += store.clear_vm_dir(name, [disk.volume or "" for disk in ref.spec.disks])
        elif store.remove_vm_dir(name):
            removed.append(str(store.vm_dir(name)))
        context.progress(90, "removing the database row")
        with session(runtime, write=True) as db:
            stored = db.exec(select(VM).where(VM.id == row.id)).first()
            if stored is not None:
                db.delete(stored)
    except BaseException as exc:
        _mark_incomplete(runtime, name, exc)
        raise
    context.log(f"VM {name} destroyed" + (f"; kept {', '.join(kept)}" if kept else ""))
    failures = vm_after(runtime.pm, "destroy", ref, context)
    context.progress(100, "destroyed")
    return {"name": name, "removed": removed, "kept": kept, **hook_errors(failures)}


def _mark_incomplete(runtime: Any, name: str, exc: BaseException) -> None:
    reason = exc.message if isinstance(exc, BhypeError) else f"{type(exc).__name__}: {exc}"
    try:
        with session(runtime, write=True) as db:
            row = get_vm(db, name)
            set_state(db, row, "error", f"destroy incomplete (run it again to finish): {reason}")
    except NotFound:
        pass
