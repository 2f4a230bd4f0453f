"""Test kit: calling the guarded API as someone, for tests whose subject is not authentication."""

from __future__ import annotations

from typing import Any

from starlette.requests import HTTPConnection

from bhype_core.api.auth_service import Authenticated
from bhype_core.api.principal import Principal
from bhype_core.api.security import authenticate_request


def act_as(app: Any, name: str = "tester", role: str = "admin") -> Principal:
    """Let every request to ``app`` through the authentication guard as ``name`` with ``role``
    (as if it carried a valid API token), without PAM, a daemon or a database.

    For tests of other features (a plugin's status route, the tasks API). Authentication
    itself is tested for real in ``tests/auth`` and ``tests/core/test_route_auth.py``.
    Call again to switch users; ``app.dependency_overrides.clear()`` restores the real guard.
    """
    principal = Principal(name, role)  # type: ignore[arg-type]

    def as_principal(connection: HTTPConnection) -> None:
        connection.state.principal = principal
        connection.state.authenticated = Authenticated(principal, "token", token_id=0)

    app.dependency_overrides[authenticate_request] = as_principal
    return principal


def token_headers(
    app: Any, name: str = "tester", role: str = "admin", token_name: str = "test"
) -> dict[str, str]:
    """A real API token for ``name`` created in the app's (migrated) database; returns the
    ``Authorization`` header. The account is re-checked through the configured authenticator
    only after ``auth.account_recheck_interval`` (60 s by default)."""
    created = app.state.auth.tokens.create(name, role, token_name)
    return {"Authorization": f"Bearer {created.secret}"}
