"""Who may run which ``zfs.*`` task kind on which target (``TaskKind.role`` and ``authorize``).

Pool-level kinds (initialising, checking, importing VMs, schedules, the status probe) are for
admins. Snapshot kinds, rollback and clone are for operators on their own VMs: a ``vm``
target must be theirs (another user's VM is "not found", as the API answers), a ``dataset``
target (any tree below bHype's root, bypassing VM ownership) is for admins only. The task
queue runs these checks at submission and again in the worker.
"""

from __future__ import annotations

from typing import Any

from bhype_core.plugin_api import Forbidden, ValidationErrors, owns_vm


def _owns(principal: Any, runtime: Any, vm: Any, field: str) -> None:
    owns_vm(principal, {field: vm}, runtime, key=field)


def owns_target(principal: Any, arguments: dict[str, Any], runtime: Any) -> None:
    """``authorize`` of the snapshot kinds: the ``vm`` is the principal's (admins: any VM);
    a ``dataset`` target is for admins only.

    :raises Forbidden: an operator named a dataset.
    :raises NotFound: an operator named another user's VM, or one that does not exist.
    """
    if principal.is_admin:
        return
    if arguments.get("dataset") is not None:
        raise Forbidden("only admins act on datasets directly; name your VM instead")
    if arguments.get("vm") is not None:
        _owns(principal, runtime, arguments["vm"], "vm")


def may_clone(principal: Any, arguments: dict[str, Any], runtime: Any) -> None:
    """``authorize`` of ``zfs.clone``: the ``source`` VM is the principal's (admins: any); only
    admins give the clone to someone else (``owner``).

    :raises NotFound: an operator named another user's VM as the source.
    :raises ValidationErrors: an operator named another ``owner``.
    """
    if principal.is_admin:
        return
    _owns(principal, runtime, arguments.get("source"), "source")
    if arguments.get("owner") not in (None, principal.name):
        raise ValidationErrors([("owner", "only admins may clone a VM for another user")])
