"""What a browser front end (the web UI plugin, or another) needs from the core's sessions: a
password login that ends in the same cookies as ``POST /api/v1/auth/login``, ending a session
in the browser, the CSRF cookie's name, whether an API token still holds, and the Server-Sent
Events line format.

These are the seams :mod:`bhype_core.plugin_api` exports; the route modules, cookie helpers and
login service behind them stay private to the core.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from sqlmodel import Session
from starlette.requests import HTTPConnection, Request
from starlette.responses import Response

from bhype_core.api.cookies import clear_session_cookies, csrf_cookie_name, set_session_cookies
from bhype_core.api.routes.auth import read_credentials
from bhype_core.api.security import client_address
from bhype_core.api.task_stream import sse
from bhype_core.errors import Unauthorized

if TYPE_CHECKING:
    from bhype_core.api.auth_service import AuthService
    from bhype_core.runtime import Runtime

__all__ = [
    "BrowserLogin",
    "api_token_role",
    "csrf_cookie",
    "end_browser_session",
    "password_login",
    "read_login_form",
    "sse",
]


@dataclass(frozen=True)
class BrowserLogin:
    """A successful password login: call :meth:`set_cookies` on the response that follows."""

    username: str
    role: str
    secret: str
    csrf_token: str
    service: AuthService

    def set_cookies(self, response: Response, connection: HTTPConnection) -> None:
        """Set the session cookie (HttpOnly) and the readable CSRF cookie on ``response``."""
        set_session_cookies(response, self.service.settings, connection, self.secret, self.csrf_token)


async def read_login_form(request: Request) -> tuple[str, str]:
    """``(username, password)`` from a JSON or an HTML-form body.

    :raises ValidationErrors: a missing or oversized field (named), or a body of another type.
    """
    return await read_credentials(request)


async def password_login(request: Request, service: AuthService, username: str, password: str) -> BrowserLogin:
    """Check ``username``/``password`` through the core's login service (PAM through the
    privileged daemon, throttled per account and address), off the event loop; a session
    cookie the browser already sent is replaced.

    :raises TooManyAttempts: throttled (``retry_after`` seconds).
    :raises BhypeError: wrong name or password (one generic message), no bHype role, or the
        authentication service is unreachable; ``http_status`` says which status fits.
    """
    previous = request.cookies.get(service.settings.cookie_name)
    record, secret, _ = await asyncio.to_thread(
        service.login, username, password, client_address(request), replaces=previous
    )
    return BrowserLogin(record.username, record.role, secret, record.csrf_token, service)


def end_browser_session(response: Response, connection: HTTPConnection) -> None:
    """Tell the browser to drop the session and CSRF cookies (an ended or expired session)."""
    clear_session_cookies(response, connection.app.state.auth.settings, connection)


def csrf_cookie(runtime: Runtime) -> str:
    """The name of the readable cookie carrying the CSRF token (for a page's scripts, which send
    it back as ``X-CSRF-Token``)."""
    return csrf_cookie_name(runtime.settings.auth)


def api_token_role(runtime: Runtime, token_id: int | None) -> str:
    """The role API token ``token_id`` grants now.

    :raises Unauthorized: it was revoked or has expired (the message says which).
    """
    from bhype_core.db.auth_models import ApiToken

    with Session(runtime.engine) as db:
        token = db.get(ApiToken, token_id) if token_id is not None else None
    if token is None:
        raise Unauthorized("the API token was revoked")
    expires = token.expires_at
    if expires is not None and (expires if expires.tzinfo else expires.replace(tzinfo=UTC)) <= datetime.now(UTC):
        raise Unauthorized("the API token has expired")
    return token.role
