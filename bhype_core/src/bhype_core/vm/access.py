"""Who may act on which VM: the object checks (``TaskKind.authorize``) of the ``vm.*`` kinds.

The task queue runs them when a task is submitted, by any route, and again in the worker
against the task's stored owner (:mod:`bhype_core.tasks.authz`). A VM's owner may act on
it; anyone else must be an admin. Another user's VM is "not found", the same answer the API
gives for a VM that does not exist, so names do not leak.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bhype_core.auth.principal import SYSTEM_NAME
from bhype_core.errors import BhypeError, ValidationErrors

if TYPE_CHECKING:
    from bhype_core.auth.principal import Principal


def is_admin_user(runtime: Any, user: str | None) -> bool:
    """Whether ``user`` is an admin now (``None`` and ``@system``, bHype itself, count as one)."""
    if user is None or user == SYSTEM_NAME:
        return True
    from bhype_core.auth.identity import identify

    try:
        return identify(user, runtime.settings.auth).role == "admin"
    except (KeyError, BhypeError):  # no such account, or in no bHype group
        return False


def _vm_name(arguments: dict[str, Any], key: str = "name") -> str:
    name = arguments.get(key)
    if not isinstance(name, str) or not name:
        raise ValidationErrors([(key, "must be a VM name")])
    return name


def owns_vm(principal: Principal, arguments: dict[str, Any], runtime: Any, key: str = "name") -> None:
    """``authorize`` of a kind acting on VM ``arguments[key]``: its owner or an admin.

    :raises NotFound: an operator named another user's VM, or one that does not exist.
    """
    if principal.is_admin:
        return  # admins act on every VM; a missing one fails in the task as before
    from bhype_core.db.session import session
    from bhype_core.vm.records import get_vm

    name = _vm_name(arguments, key)
    with session(runtime) as db:
        get_vm(db, name, principal)


def may_create(principal: Principal, arguments: dict[str, Any], runtime: Any) -> None:
    """``authorize`` of ``vm.create``: only admins create VMs for others or pass raw hypervisor
    options (``overrides.extra``).

    :raises ValidationErrors: naming ``owner`` or ``overrides.extra``.
    """
    if principal.is_admin:
        return
    errors = ValidationErrors()
    owner = arguments.get("owner")
    if owner not in (None, principal.name):
        errors.add("owner", "only admins may create VMs for other users")
    overrides = arguments.get("overrides") or {}
    extra = overrides.get("extra") if isinstance(overrides, dict) else None
    if extra:
        errors.add("overrides.extra", "raw hypervisor options are for admins only")
    errors.raise_if_any()


def may_edit(principal: Principal, arguments: dict[str, Any], runtime: Any) -> None:
    """``authorize`` of ``vm.edit``: the VM's owner or an admin; only admins give a VM away or
    set raw hypervisor options (``changes.owner``, ``changes.extra``).

    :raises NotFound: another user's VM.
    :raises ValidationErrors: naming ``changes.owner`` or ``changes.extra``.
    """
    owns_vm(principal, arguments, runtime)
    if principal.is_admin:
        return
    changes = arguments.get("changes")
    if not isinstance(changes, dict):
        return  # the task itself names what is wrong with them
    errors = ValidationErrors()
    if "owner" in changes and changes["owner"] != principal.name:
        errors.add("changes.owner", "only admins may give a VM to another user")
    if changes.get("extra"):
        errors.add("changes.extra", "raw hypervisor options are for admins only")
    errors.raise_if_any()
