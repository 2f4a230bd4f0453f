"""Reading and writing ``core_vm`` rows, with the one visibility rule: operators see only
their own VMs (another's is "not found", never "forbidden"), admins see all."""

from __future__ import annotations

from collections.abc import Collection
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_
from sqlalchemy import select as select_columns
from sqlmodel import Session, col, select

from bhype_core.errors import NotFound
from bhype_core.vm.models import VM


def is_admin(principal: Any) -> bool:
    """Whether ``principal`` (anything with ``role``; ``None`` = the system) sees every VM."""
    return principal is None or getattr(principal, "role", None) == "admin"


def may_see(principal: Any, vm: VM) -> bool:
    """Whether ``principal`` may see and act on ``vm``."""
    return is_admin(principal) or vm.owner == getattr(principal, "name", None)


def find_vm(db: Session, name: str) -> VM | None:
    """The VM called ``name``, whoever owns it, or ``None``."""
    return db.exec(select(VM).where(VM.name == name)).first()


def get_vm(db: Session, name: str, principal: Any = None) -> VM:
    """The VM called ``name`` if ``principal`` may see it.

    :raises NotFound: it does not exist or belongs to someone else (same answer, so an
        operator cannot probe other users' VM names).
    """
    vm = find_vm(db, name)
    if vm is None or not may_see(principal, vm):
        raise NotFound(f"no VM named {name!r}")
    return vm


# What a list shows: plain rows of these columns, not ORM objects (a list of 1,000 VMs is
# mostly object-building otherwise) and without the cached driver status.
LIST_COLUMNS = (VM.id, VM.name, VM.uuid, VM.owner, VM.datastore, VM.state, VM.state_detail, VM.spec,
                VM.created, VM.updated)


def list_vms(db: Session, principal: Any = None, owner: str | None = None) -> list[Any]:
    """VMs ``principal`` may see, by name, as rows of :data:`LIST_COLUMNS` (attribute access
    like a VM); ``owner`` narrows the list further."""
    query = select_columns(*LIST_COLUMNS).order_by(col(VM.name))  # type: ignore[call-overload]
    if not is_admin(principal):
        query = query.where(VM.owner == getattr(principal, "name", None))
    if owner is not None:
        query = query.where(VM.owner == owner)
    return list(db.execute(query).all())


# What a sampler needs of every VM each tick: no spec (issue 15: decoding 10,000 specs every ten
# seconds was most of a monitored host's CPU at rest).
SUMMARY_COLUMNS = (VM.id, VM.name, VM.uuid, VM.owner, VM.datastore, VM.state, VM.state_detail, VM.updated, VM.host)


def list_vm_summaries(db: Session, states: Collection[str] | None = None, uuids: Collection[str] = ()) -> list[Any]:
    """Every VM, by name, as rows of :data:`SUMMARY_COLUMNS` (attribute access like a VM);
    with ``states``, only the VMs in one of them plus those whose UUID is in ``uuids`` (the
    filter runs in SQL, on the indexed ``state``: a sampler that follows the 200 running VMs of
    10,000 reads 200 rows, not 10,000)."""
    query = select_columns(*SUMMARY_COLUMNS).order_by(col(VM.name))  # type: ignore[call-overload]
    if states is not None:
        wanted = col(VM.state).in_(list(states))
        query = query.where(or_(wanted, col(VM.uuid).in_(list(uuids))) if uuids else wanted)
    return list(db.execute(query).all())


def existing_names(db: Session, exclude_id: int | None = None) -> list[str]:
    """Every VM name on the host except VM ``exclude_id`` (for spec validation)."""
    query = select(VM.id, VM.name)
    return [name for vm_id, name in db.exec(query).all() if vm_id != exclude_id]


def existing_uuids(db: Session, exclude_id: int | None = None) -> list[str]:
    """Every VM's UUID except VM ``exclude_id``'s (bhyve and SMBIOS need them unique)."""
    return [uuid for vm_id, uuid in db.exec(select(VM.id, VM.uuid)).all() if vm_id != exclude_id]


def existing_macs(db: Session, exclude_id: int | None = None) -> list[str]:
    """Every NIC MAC of every VM except VM ``exclude_id`` (generated MACs stay unique)."""
    macs = []
    for vm_id, spec in db.exec(select(VM.id, VM.spec)).all():
        if vm_id == exclude_id:
            continue
        macs += [nic["mac"] for nic in (spec or {}).get("nics", []) if isinstance(nic, dict) and nic.get("mac")]
    return macs


def set_state(db: Session, vm: VM, state: str, detail: str = "", status: dict[str, Any] | None = None) -> VM:
    """Record the driver's latest answer in the row's state cache (``status``: its full
    answer, :meth:`VMStatus.to_dict`, kept as is when not given)."""
    vm.state = state
    vm.state_detail = detail
    if status is not None:
        vm.status = status
    vm.updated = datetime.now(UTC)
    db.add(vm)
    return vm
