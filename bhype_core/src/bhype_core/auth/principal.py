"""Who is acting: :class:`Principal` (an account and its bHype role) and :data:`SYSTEM`.

FastAPI-free, so the task service, the worker and plugins can share it with the API (which
re-exports it from :mod:`bhype_core.api.principal`).
"""

from __future__ import annotations

from dataclasses import dataclass

from bhype_core.auth.identity import Role

# Not a valid Unix user name (useradd(8) and pw(8) refuse '@'), so no account can ever be it.
SYSTEM_NAME = "@system"


@dataclass(frozen=True)
class Principal:
    """A caller: the local account ``name`` and the bHype ``role`` its groups grant.

    The API's authentication guard builds one per request (:mod:`bhype_core.api.security`);
    the worker builds one from a task's stored owner (:mod:`bhype_core.tasks.authz`).
    """

    name: str
    role: Role

    @property
    def is_admin(self) -> bool:
        """Admins see and act on every user's VMs and tasks (issue 3, "Ownership")."""
        return self.role == "admin"

    @property
    def is_system(self) -> bool:
        """Whether this is :data:`SYSTEM`, bHype itself rather than a person."""
        return self.name == SYSTEM_NAME


# Work bHype submits itself (periodic jobs, recovery): an admin, but the task queue accepts it
# only for the kinds that declare ``TaskKind.system`` (see bhype_core.tasks.authz).
SYSTEM = Principal(SYSTEM_NAME, "admin")
