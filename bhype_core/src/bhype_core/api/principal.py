"""Who is calling: the :class:`Principal` the authentication guard put on ``request.state``.

:class:`Principal` and :data:`SYSTEM` live in :mod:`bhype_core.auth.principal` (no FastAPI) and
are re-exported here.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from bhype_core.auth.principal import SYSTEM, Principal
from bhype_core.errors import Forbidden, Unauthorized

__all__ = ["SYSTEM", "AdminDep", "Principal", "PrincipalDep", "get_principal", "require_admin"]


async def get_principal(request: Request) -> Principal:
    """The caller of this request; raises :class:`~bhype_core.errors.Unauthorized` when nobody
    authenticated (a public route, or a request the guard let through without credentials)."""
    principal = getattr(request.state, "principal", None)
    if not isinstance(principal, Principal):
        raise Unauthorized("authentication required: log in or send 'Authorization: Bearer <token>'")
    return principal


PrincipalDep = Annotated[Principal, Depends(get_principal)]


async def require_admin(principal: PrincipalDep) -> Principal:
    """The caller, if an admin; raises :class:`~bhype_core.errors.Forbidden` (403) for anyone
    else. For routes about the whole host rather than one user's things (the host command audit
    trail, host probes)."""
    if not principal.is_admin:
        raise Forbidden(f"only admins may do this; {principal.name!r} is {principal.role}")
    return principal


AdminDep = Annotated[Principal, Depends(require_admin)]
