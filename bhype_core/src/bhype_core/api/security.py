"""The one authentication guard every route passes through, and the marker for public routes."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import BackgroundTasks, Depends, WebSocketException, status
from fastapi.dependencies.models import Dependant
from starlette.concurrency import run_in_threadpool
from starlette.requests import HTTPConnection

from bhype_core.api.auth_service import Authenticated, AuthService
from bhype_core.api.token_uses import wait_stored
from bhype_core.errors import BhypeError, Unauthorized

CSRF_HEADER = "X-CSRF-Token"
# RFC 9110 §9.2.1: these do not change state, so a forged one does no harm.
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})
MISSING_CREDENTIALS = "authentication required: log in, or send 'Authorization: Bearer <token>'"


def public_route() -> None:
    """Marker dependency: this route answers anonymous callers (health, login, docs).

    Declare it as ``dependencies=[PUBLIC]``; the guard then lets the request through without
    credentials, and ``tests/core/test_route_auth.py`` lists every route that does so.
    """


PUBLIC = Depends(public_route)


def _uses(dependant: Dependant, call: Any) -> bool:
    return any(d.call is call or _uses(d, call) for d in dependant.dependencies)


def is_public(route: Any) -> bool:
    """Whether ``route`` (an APIRoute or APIWebSocketRoute) declares :data:`PUBLIC`.

    The answer is computed once per route object and kept on it: routes never change after
    the app is built.
    """
    cached = getattr(route, "_bhype_public", None)
    if cached is None:
        dependant = getattr(route, "dependant", None)
        cached = dependant is not None and _uses(dependant, public_route)
        route._bhype_public = cached
    return bool(cached)


def get_auth_service(connection: HTTPConnection) -> AuthService:
    """The app's :class:`AuthService` (built by :func:`bhype_core.api.auth_setup.install_auth`)."""
    return connection.app.state.auth


def client_address(connection: HTTPConnection) -> str:
    """The peer address as uvicorn saw it (no X-Forwarded-For: ``bhype serve`` trusts no proxy)."""
    return connection.client.host if connection.client else ""


async def authenticate_request(connection: HTTPConnection, background: BackgroundTasks) -> None:
    """The guard, an app-wide dependency (so a new route cannot forget it): for every route not
    marked :data:`PUBLIC`, set ``request.state.principal`` from a bearer token or a session
    cookie, or refuse with 401.

    A bearer token wins over a cookie and is exempt from CSRF (a browser never adds one by
    itself); a cookie-authenticated request that may change state (not GET/HEAD/OPTIONS/TRACE,
    or a WebSocket) needs the session's ``X-CSRF-Token``. The checks block, so they run in the
    thread pool, except a read by a token this process read moments ago (answered from memory
    on the event loop, issue 15). A GET/HEAD's token use is stored by the request's background
    task, after the answer went out (:mod:`bhype_core.api.token_uses`).
    """
    route = connection.scope.get("route")
    if route is not None and is_public(route):
        return
    if connection.scope["type"] == "websocket":
        # An HTTP error cannot answer a WebSocket: close with "policy violation" and the reason.
        try:
            await run_in_threadpool(_authenticate, connection)
        except BhypeError as exc:
            raise WebSocketException(status.WS_1008_POLICY_VIOLATION, exc.message[:120]) from None
        return
    result = _from_memory(connection)
    if result is None:
        result = await run_in_threadpool(_authenticate, connection)
    if result.pending_use is not None:
        background.add_task(wait_stored, result.pending_use)


def _from_memory(connection: HTTPConnection) -> Authenticated | None:
    authorization = connection.headers.get("authorization")
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    service = get_auth_service(connection)
    result = service.cached_token(value.strip(), client_address(connection), connection.scope.get("method", ""),
                                  connection.url.path)
    if result is not None:
        connection.state.principal = result.principal
        connection.state.authenticated = result
    return result


def _authenticate(connection: HTTPConnection) -> Authenticated:
    service = get_auth_service(connection)
    address = client_address(connection)
    authorization = connection.headers.get("authorization")
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            raise Unauthorized("the Authorization header must be 'Bearer <token>'")
        method = connection.scope.get("method", "WEBSOCKET")
        result = service.token(value.strip(), address, method, connection.url.path)
    else:
        secret = connection.cookies.get(service.settings.cookie_name)
        if not secret:
            raise Unauthorized(MISSING_CREDENTIALS)
        method = connection.scope.get("method")
        if method is None:
            # A WebSocket handshake cannot carry custom headers from a browser: the token comes
            # as the ``csrf`` query parameter instead.
            csrf = connection.query_params.get("csrf")
        else:
            csrf = connection.headers.get(CSRF_HEADER)
        unsafe = method not in SAFE_METHODS
        result = service.session(secret, address, csrf, unsafe=unsafe)
    connection.state.principal = result.principal
    connection.state.authenticated = result
    return result


async def get_authenticated(connection: HTTPConnection) -> Authenticated:
    """How this request authenticated (session or token); 401 when it did not."""
    result = getattr(connection.state, "authenticated", None)
    if not isinstance(result, Authenticated):
        raise Unauthorized(MISSING_CREDENTIALS)
    return result


AuthServiceDep = Annotated[AuthService, Depends(get_auth_service)]
AuthenticatedDep = Annotated[Authenticated, Depends(get_authenticated)]

