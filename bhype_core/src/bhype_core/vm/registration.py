"""Giving a VM whose files already exist a ``core_vm`` record, and taking it away, with the
lifecycle hooks fired: how clones, imported pools, restores and moves make VMs appear.

``vm.create`` makes the files *and* the record (``bhype_vm_*_create``); everything else that
makes a VM appear goes through :func:`register_vm` (``bhype_vm_*_register``), so plugins see
every VM come and go, whoever made it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from bhype_core.db.session import session
from bhype_core.errors import NotFound, ValidationErrors
from bhype_core.hosts.settings import local_host_name
from bhype_core.spec import validate_spec
from bhype_core.vm.context import spec_context
from bhype_core.vm.hooks import vm_after, vm_before
from bhype_core.vm.models import VM, VMRef
from bhype_core.vm.records import find_vm

if TYPE_CHECKING:
    from bhype_core.tasks import TaskContext


def register_vm(context: TaskContext, datastore: str, data: dict[str, Any], owner: str) -> VMRef:
    """Validate ``data`` (a spec) against this host (names and MACs in use), fire
    ``bhype_vm_before_register``, insert the row in ``store``'s datastore, fire
    ``bhype_vm_after_register``; returns the registered VM (``id`` set).

    The VM's directory and disks must already exist in datastore ``datastore`` (this never
    creates files).
    A ``uuid``/MAC in ``data`` is kept (an imported VM keeps its identity); missing ones are
    generated.

    :raises ValidationErrors: invalid spec, the name/UUID is taken, or a plugin's veto.
    """
    from bhype_core.vm.services import open_datastore

    runtime = context.runtime
    store = open_datastore(runtime, datastore)
    data = {**data, "owner": owner}
    with session(runtime) as db:
        spec = validate_spec(data, spec_context(runtime, db, store=None))
    vm_dir = store.vm_dir(spec.name)
    vm_before(runtime.pm, "register", VMRef(spec.name, str(spec.uuid), owner, datastore, spec, vm_dir), context)
    row = VM(name=spec.name, uuid=str(spec.uuid), owner=owner, datastore=datastore, spec=spec.to_data(),
             host=local_host_name(runtime))
    try:
        with session(runtime) as db:
            db.add(row)
    except IntegrityError:
        taken = f"a VM named {spec.name!r} or with UUID {spec.uuid} already exists"
        raise ValidationErrors([("name", taken)]) from None
    ref = VMRef.of(row, vm_dir)
    context.log(f"registered VM {spec.name} ({spec.uuid}) in datastore {datastore}")
    vm_after(runtime.pm, "register", ref, context)
    return ref


def unregister_vm(context: TaskContext, name: str) -> VMRef:
    """Remove VM ``name``'s record, keeping its files (the VM moved away or was exported),
    between ``bhype_vm_before_unregister`` and ``bhype_vm_after_unregister``.

    :raises NotFound: no VM called ``name``.
    :raises ValidationErrors: a plugin's veto (the record stays).
    """
    from bhype_core.vm.services import open_datastore

    runtime = context.runtime
    with session(runtime) as db:
        row = find_vm(db, name)
    if row is None:
        raise NotFound(f"no VM named {name!r}")
    ref = VMRef.of(row, open_datastore(runtime, row.datastore).vm_dir(row.name))
    vm_before(runtime.pm, "unregister", ref, context)
    with session(runtime, write=True) as db:
        stored = db.exec(select(VM).where(VM.id == row.id)).first()
        if stored is not None:
            db.delete(stored)
    context.log(f"unregistered VM {name} (its files stay)")
    vm_after(runtime.pm, "unregister", ref, context)
    return ref


def adopt_vm(context: TaskContext, name: str, uuid: str, datastore: str, host: str | None = None) -> VMRef:
    """Make VM ``name`` (whose UUID must be ``uuid``) this host's (or ``host``'s: a move's
    undo gives it back), in ``datastore``: the end of a move inside a group (issue 22), where
    the VM keeps its one record and only its ``host`` and ``datastore`` change. The files must
    already be in the VM's directory there. Call it from a task running on the receiving host;
    the move's own lifecycle hooks (``bhype_vm_*_move``) are the moving side's to fire.

    :raises NotFound: no VM called ``name``.
    :raises ValidationErrors: the VM's UUID is not ``uuid`` (another VM took the name).
    """
    from bhype_core.vm.services import open_datastore

    runtime = context.runtime
    host = host or local_host_name(runtime)
    with session(runtime, write=True) as db:
        stored = db.exec(select(VM).where(VM.name == name)).first()
        if stored is None:
            raise NotFound(f"no VM named {name!r}")
        if str(stored.uuid).lower() != uuid.lower():
            raise ValidationErrors([("uuid", f"VM {name} has UUID {stored.uuid}, not {uuid}")])
        previous = stored.host
        stored.host, stored.datastore = host, datastore
        db.add(stored)
    with session(runtime) as db:
        row = find_vm(db, name)
    assert row is not None  # just written; VM names are unique in the group
    context.log(f"VM {name} now lives on host {host} (was {previous}), datastore {datastore}")
    return VMRef.of(row, open_datastore(runtime, datastore).vm_dir(name))


def vm_records_available(runtime: Any) -> str | None:
    """``None`` when VMs can be registered here, else why not (the ``core_vms`` plugin is not
    loaded, or the database has no ``core_vm`` table yet)."""
    from sqlalchemy import inspect

    if "vm.create" not in runtime.registry.tasks:
        return "the core_vms plugin (VM records) is not loaded"
    try:
        if "core_vm" not in inspect(runtime.engine).get_table_names():
            return "the database has no core_vm table (run `bhype db upgrade`)"
    except Exception as exc:  # noqa: BLE001 - any database failure is a reason
        return f"the database cannot be read: {exc}"
    return None
