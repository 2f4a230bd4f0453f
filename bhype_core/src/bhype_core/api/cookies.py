"""The session and CSRF cookies: names, flags (HttpOnly, SameSite=Strict, Secure on HTTPS)."""

from __future__ import annotations

from starlette.requests import HTTPConnection
from starlette.responses import Response

from bhype_core.auth.settings import AuthSettings


def csrf_cookie_name(settings: AuthSettings) -> str:
    """The readable cookie carrying the CSRF token, for the web UI's scripts."""
    return f"{settings.cookie_name}_csrf"


def secure(settings: AuthSettings, connection: HTTPConnection) -> bool:
    """Whether cookies get the Secure flag: ``auth.cookie_secure``, where ``auto`` means "the
    request came over HTTPS" (a browser then never sends them over plain HTTP)."""
    if settings.cookie_secure == "auto":
        return connection.url.scheme in ("https", "wss")
    return settings.cookie_secure == "always"


def set_session_cookies(
    response: Response, settings: AuthSettings, connection: HTTPConnection, secret: str, csrf_token: str
) -> None:
    """Set the session cookie (HttpOnly: scripts never see it) and the CSRF cookie (readable,
    so the web UI can echo it in ``X-CSRF-Token``; a cross-site page can neither read it nor
    have it sent, as both are SameSite=Strict)."""
    flags = {"path": "/", "secure": secure(settings, connection), "samesite": "strict"}
    # No max_age: the server enforces idle and absolute timeouts; the cookie ends with the browser.
    response.set_cookie(settings.cookie_name, secret, httponly=True, **flags)  # type: ignore[arg-type]
    response.set_cookie(csrf_cookie_name(settings), csrf_token, httponly=False, **flags)  # type: ignore[arg-type]


def clear_session_cookies(response: Response, settings: AuthSettings, connection: HTTPConnection) -> None:
    """Tell the browser to drop both cookies (logout, ended session)."""
    flags = {"path": "/", "secure": secure(settings, connection), "samesite": "strict"}
    response.delete_cookie(settings.cookie_name, httponly=True, **flags)  # type: ignore[arg-type]
    response.delete_cookie(csrf_cookie_name(settings), httponly=False, **flags)  # type: ignore[arg-type]
