"""Who may run which task kind: the one check behind every submission and every run (issue 11).

Each :class:`~bhype_core.registry.TaskKind` declares the least ``role`` that may submit it
(admin unless it says otherwise) and an optional object check ``authorize(principal,
arguments, runtime)``. :func:`check_submission` applies both when a task is submitted (every
entry point goes through :func:`bhype_core.tasks.service.submit`); :func:`check_run`
applies them again in the worker, which runs as root and so must not trust the API process
that wrote the row: the owner's role is read from the account's groups *now*
(:func:`bhype_core.auth.identity.identify`, as a login would).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bhype_core.auth.principal import SYSTEM, SYSTEM_NAME, Principal
from bhype_core.errors import BhypeError, Forbidden, PluginError, ValidationErrors

if TYPE_CHECKING:
    from bhype_core.registry import Registry, TaskKind
    from bhype_core.runtime import Runtime


def role_now(runtime: Runtime, user: str) -> str | None:
    """The bHype role the groups of account ``user`` grant now, or ``None`` (no such account,
    or in no bHype group)."""
    from bhype_core.auth.identity import identify

    try:
        return identify(user, runtime.settings.auth).role
    except (KeyError, ValueError, BhypeError):
        return None


def owner_principal(runtime: Runtime, owner: str | None) -> Principal:
    """The :class:`Principal` a stored task owner stands for in the worker.

    ``@system`` (and ``None``, the periodic jobs of old) is :data:`SYSTEM`; anyone else is an
    admin only if their groups make them one now. Everyone else is treated as an operator:
    the object checks then confine them to their own things, whether or not they still hold a
    role (a role taken away after submitting grants nothing beyond that).
    """
    if owner is None or owner == SYSTEM_NAME:
        return SYSTEM
    return Principal(owner, "admin" if role_now(runtime, owner) == "admin" else "operator")


def submitted_by_system(registry: Registry, kind: TaskKind) -> bool:
    """Whether bHype itself submits ``kind``: it declares ``system``, or a periodic job runs it."""
    return kind.system or any(job.kind == kind.name for job in registry.periodic_jobs)


def check_role(registry: Registry, kind: TaskKind, principal: Principal) -> None:
    """Refuse ``principal`` for ``kind`` by role alone (no object check).

    :raises Forbidden: an operator asked for an admin kind, or :data:`SYSTEM` for a kind that
        bHype does not submit itself (:func:`submitted_by_system`).
    """
    if principal.is_system and not submitted_by_system(registry, kind):
        raise Forbidden(f"task kind {kind.name} is not one bHype submits itself; it needs a user")
    if kind.role == "admin" and not principal.is_admin:
        raise Forbidden(f"task kind {kind.name} is for admins only; {principal.name!r} is {principal.role}")


def check_object(runtime: Runtime, kind: TaskKind, plugin: str, principal: Principal, arguments: dict) -> None:
    """Run the kind's ``authorize`` for ``principal`` (nothing if it declares none).

    :raises NotFound: another user's object (the same answer as a missing one).
    :raises Forbidden: the principal may not do this.
    :raises ValidationErrors: an argument the principal may not give (``arguments.<name>``).
    :raises PluginError: ``authorize`` itself broke (names the plugin): refused, never allowed.
    """
    if kind.authorize is None:
        return
    try:
        kind.authorize(principal, arguments, runtime)
    except ValidationErrors as exc:
        errors = ValidationErrors()
        errors.extend(exc, prefix="arguments")
        raise errors from None
    except BhypeError:
        raise
    except Exception as exc:  # a bug in the check must refuse, and say whose bug it is
        raise PluginError(f"task kind {kind.name} (plugin {plugin!r}) could not check its access: {exc}") from exc


def check_submission(runtime: Runtime, principal: Principal, kind_name: str, arguments: dict) -> None:
    """Everything :func:`~bhype_core.tasks.service.submit` checks about *who* asks: the
    kind's role, then its object check. ``kind_name`` must be registered."""
    catalog = runtime.registry.tasks
    kind = catalog[kind_name]
    check_role(runtime.registry, kind, principal)
    check_object(runtime, kind, catalog.plugin_of(kind_name), principal, arguments)


def check_run(runtime: Runtime, kind: TaskKind, plugin: str, owner: str | None, arguments: Any) -> Principal:
    """The worker's check before it runs a task of ``kind`` stored for ``owner``: the same rules
    as at submission, with the owner's role read from the account now.

    :returns: the principal the task runs for.
    :raises Forbidden: (or NotFound, ValidationErrors) as :func:`check_role` and :func:`check_object`.
    """
    principal = owner_principal(runtime, owner)
    check_role(runtime.registry, kind, principal)
    check_object(runtime, kind, plugin, principal, arguments if isinstance(arguments, dict) else {})
    return principal


def admin_kinds(runtime: Runtime) -> list[str]:
    """Names of every registered kind that only admins may submit."""
    return [kind.name for kind in runtime.registry.tasks if kind.role == "admin"]


__all__ = [
    "SYSTEM",
    "admin_kinds",
    "check_object",
    "check_role",
    "check_run",
    "check_submission",
    "owner_principal",
    "role_now",
    "submitted_by_system",
]
