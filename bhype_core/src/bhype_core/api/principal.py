"""Who is calling: the :class:`Principal` the authentication guard put on ``request.state``."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from bhype_core.auth.identity import Role
from bhype_core.errors import Forbidden, Unauthorized


@dataclass(frozen=True)
class Principal:
    """An authenticated caller: the local account ``name`` and the bHype ``role`` its groups grant.

    Set by the authentication guard (:mod:`bhype_core.api.security`) from a session cookie or an
    API token; routes read it through :data:`PrincipalDep` and decide ownership with it.
    """

    name: str
    role: Role

    @property
    def is_admin(self) -> bool:
        """Admins see and act on every user's VMs and tasks (issue 3, "Ownership")."""
        return self.role == "admin"


def get_principal(request: Request) -> Principal:
    """The caller of this request; raises :class:`~bhype_core.errors.Unauthorized` when nobody
    authenticated (a public route, or a request the guard let through without credentials)."""
    principal = getattr(request.state, "principal", None)
    if not isinstance(principal, Principal):
        raise Unauthorized("authentication required: log in or send 'Authorization: Bearer <token>'")
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


def require_admin(principal: PrincipalDep) -> Principal:
    """The caller, if an admin; raises :class:`~bhype_core.errors.Forbidden` (403) for anyone
    else. For routes about the whole host rather than one user's things (the host command audit
    trail, host probes)."""
    if not principal.is_admin:
        raise Forbidden(f"only admins may do this; {principal.name!r} is {principal.role}")
    return principal


AdminDep = Annotated[Principal, Depends(require_admin)]
