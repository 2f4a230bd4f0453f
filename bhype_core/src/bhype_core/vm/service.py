"""The VM service plugins use: look VMs up (with the one visibility rule), get the
:class:`VMRef` the hooks see, and ask the hypervisor whether one runs.

Each call opens its own database session on ``runtime`` (a plugin never needs the core's
session plumbing for these); the records themselves are :class:`bhype_core.vm.models.VM` rows,
read-only for plugins (changes go through tasks: ``vm.edit``, :func:`register_vm` …).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bhype_core.db.session import session
from bhype_core.vm import records
from bhype_core.vm.models import VM, VMRef

if TYPE_CHECKING:
    from collections.abc import Collection

    from bhype_core.runtime import Runtime


def get_vm(runtime: Runtime, name: str, principal: Any = None) -> VM:
    """VM ``name`` if ``principal`` may see it (``None``: the system, sees all).

    :raises NotFound: it does not exist or belongs to someone else (the same answer, so an
        operator cannot probe other users' VM names).
    """
    with session(runtime) as db:
        return records.get_vm(db, name, principal)


def find_vm(runtime: Runtime, name: str) -> VM | None:
    """VM ``name`` whoever owns it, or ``None`` (for system work; check :func:`may_see` before
    showing it to a user)."""
    with session(runtime) as db:
        return records.find_vm(db, name)


def list_vms(runtime: Runtime, principal: Any = None, owner: str | None = None) -> list[Any]:
    """The VMs ``principal`` may see, by name (rows with a VM's columns except the driver's
    cached status); ``owner`` narrows the list."""
    with session(runtime) as db:
        return records.list_vms(db, principal, owner)


def list_vm_summaries(runtime: Runtime, states: Collection[str] | None = None,
                      uuids: Collection[str] = ()) -> list[Any]:
    """Every VM on every host, by name, without its spec: rows with ``id``, ``name``, ``uuid``,
    ``owner``, ``datastore``, ``state``, ``state_detail``, ``updated`` and ``host`` (system work
    that looks at every VM often, e.g. a sampler; fetch a VM's spec with :func:`find_vm` when
    needed, and keep it while ``updated`` is the same). With ``states`` (e.g. ``("starting",
    "running", "stopping")``), only the VMs in one of those cached states, plus any whose UUID
    is in ``uuids`` whatever its state (those a sampler still follows), filtered in SQL."""
    with session(runtime) as db:
        return records.list_vm_summaries(db, states, uuids)


def vm_ref(runtime: Runtime, vm: VM) -> VMRef:
    """The :class:`VMRef` (what lifecycle hooks receive) of a stored VM."""
    from bhype_core.vm.services import open_datastore

    return VMRef.of(vm, open_datastore(runtime, vm.datastore).vm_dir(vm.name))


def is_running(runtime: Runtime, name: str) -> bool:
    """Whether the hypervisor runs VM ``name`` now (the driver's answer, not the cached state);
    a VM without a record is not run by bHype: ``False``. Worker side (it may run host commands)."""
    from bhype_core.vm.services import active_driver

    vm = find_vm(runtime, name)
    if vm is None:
        return False
    ref = vm_ref(runtime, vm)
    return bool(active_driver(runtime).status(ref.spec, ref.vm_dir).active)


def status_driver(runtime: Runtime) -> Any:
    """A driver of this host's kind for reading VM status in the API process: its own instance,
    never the worker's (the API's runner refuses host commands), kept in ``runtime.extras``."""
    driver = runtime.extras.get("vm.status_driver")
    if driver is None:
        from bhype_core.drivers.select import select_driver

        driver = runtime.extras.setdefault("vm.status_driver", select_driver(runtime))
    return driver


may_see = records.may_see
is_admin = records.is_admin
