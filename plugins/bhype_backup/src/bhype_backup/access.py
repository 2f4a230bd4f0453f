"""Who may run which ``backup.*`` task kind (``TaskKind.role`` and ``authorize``), and the locks.

Targets are for admins. A VM's owner may back up and restore their own VMs: ``backup.run``
names the VM (``vm``); ``backup.restore`` carries the point's VM name (``vm``, filled in by the
API from the point) and, for a new VM, its name (``as``). Both hold ``vm:<name>`` locks, the
lock every VM task takes, so destroy, move and rollback wait for a running backup.
"""

from __future__ import annotations

from typing import Any

from bhype_core.plugin_api import NotFound, ValidationErrors, owns_vm, session


def vm_lock(arguments: dict[str, Any]) -> list[str]:
    """``backup.run``: the VM's lock."""
    return [f"vm:{arguments.get('vm')}"]


def restore_locks(arguments: dict[str, Any]) -> list[str]:
    """``backup.restore``: the VM restored onto (``as`` or the point's VM ``vm``)."""
    locks = [f"vm:{arguments['as']}"] if arguments.get("as") else []
    if arguments.get("vm") and not arguments.get("as"):
        locks.append(f"vm:{arguments['vm']}")
    return locks


def may_back_up(principal: Any, arguments: dict[str, Any], runtime: Any) -> None:
    """``authorize`` of ``backup.run``: the VM's owner or an admin."""
    owns_vm(principal, arguments, runtime, key="vm")


def may_restore(principal: Any, arguments: dict[str, Any], runtime: Any) -> None:
    """``authorize`` of ``backup.restore``: admins any point; an owner the points of their VM
    (by the VM's UUID, so a point of another user's VM of the same name is "not found")."""
    from bhype_backup.models import BackupPoint
    from bhype_core.plugin_api import find_vm

    point_id = arguments.get("point")
    if not isinstance(point_id, int) or isinstance(point_id, bool):
        raise ValidationErrors([("point", "must be a point id")])
    with session(runtime) as db:
        point = db.get(BackupPoint, point_id)
    if point is None or not point.complete:
        raise NotFound(f"no backup point {point_id}")
    if arguments.get("vm") not in (None, point.vm_name):
        raise ValidationErrors([("vm", f"point {point_id} is of VM {point.vm_name}")])
    if principal.is_admin:
        return
    vm = find_vm(runtime, point.vm_name)
    if vm is None or vm.uuid != point.vm_uuid or vm.owner != principal.name:
        raise NotFound(f"no backup point {point_id}")
