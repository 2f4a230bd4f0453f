"""Who may act on which VM, checked again in the worker.

The API refuses other users' VMs before queuing anything, but a task can also arrive through
the generic ``POST /api/v1/tasks``; so every ``vm.*`` task checks its submitter too. A VM's
owner may act on it; anyone else must be an admin, which the worker (root) reads from the
account's groups now, as a login would (:func:`bhype_core.auth.identity.identify`). Another
user's VM is "not found", the same answer the API gives.
"""

from __future__ import annotations

from typing import Any

from bhype_core.errors import BhypeError, NotFound, ValidationErrors


def is_admin_user(runtime: Any, user: str | None) -> bool:
    """Whether ``user`` is an admin now (``None``, the system itself, counts as one)."""
    if user is None:
        return True
    from bhype_core.auth.identity import identify

    try:
        return identify(user, runtime.settings.auth).role == "admin"
    except (KeyError, BhypeError):  # no such account, or in no bHype group
        return False


def check_vm_access(context: Any, name: str, owner: str) -> None:
    """Allow the task's user to act on VM ``name`` owned by ``owner``.

    :raises NotFound: the user neither owns it nor is an admin.
    """
    if context.user is not None and context.user != owner and not is_admin_user(context.runtime, context.user):
        raise NotFound(f"no VM named {name!r}")


def check_create_rights(context: Any, owner: str, spec_data: dict[str, Any]) -> None:
    """Only admins create VMs for others or pass raw hypervisor options.

    :raises ValidationErrors: naming ``owner`` or ``extra``.
    """
    if context.user is None or is_admin_user(context.runtime, context.user):
        return
    errors = ValidationErrors()
    if owner != context.user:
        errors.add("owner", "only admins may create VMs for other users")
    extra = spec_data.get("extra") or {}
    if isinstance(extra, dict) and any(extra.values()):
        errors.add("extra", "raw hypervisor options are for admins only")
    errors.raise_if_any()
