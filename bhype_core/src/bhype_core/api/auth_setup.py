"""Assembling the API's identity layer from settings: stores, authenticator, throttle, handlers."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from bhype_core.api.audit_log import AuditLog
from bhype_core.api.auth_service import AuthService, SessionEnded
from bhype_core.api.cookies import clear_session_cookies
from bhype_core.api.session_store import DatabaseSessionStore, RedisSessionStore, SessionStore
from bhype_core.api.tokens import TokenStore
from bhype_core.auth.authenticator import make_authenticator
from bhype_core.auth.throttle import MemoryThrottle, Throttle, TooManyAttempts
from bhype_core.auth.throttle_redis import RedisThrottle
from bhype_core.errors import ConfigError

log = logging.getLogger("bhype.auth")

# Every Redis call of the identity layer is bounded: a hung Redis must become an error answer.
REDIS_TIMEOUT = 5.0


def session_backend(runtime: Any) -> str:
    """``database`` or ``redis``: ``auth.session_store``, where ``auto`` follows ``core.redis_url``."""
    choice = runtime.settings.auth.session_store
    if choice == "auto":
        return "redis" if runtime.settings.core.redis_url else "database"
    if choice == "redis" and not runtime.settings.core.redis_url:
        raise ConfigError('auth.session_store = "redis" needs core.redis_url')
    return choice


def make_auth_service(runtime: Any) -> AuthService:
    """The :class:`AuthService` for this runtime's settings. Nothing connects yet."""
    settings = runtime.settings.auth

    def engine() -> Any:
        # Resolved on first use: building the app must not create the database file.
        return runtime.engine

    sessions: SessionStore
    throttle: Throttle
    if session_backend(runtime) == "redis":
        import redis

        client = redis.Redis.from_url(
            runtime.settings.core.redis_url,
            socket_timeout=REDIS_TIMEOUT,
            socket_connect_timeout=REDIS_TIMEOUT,
        )
        sessions = RedisSessionStore(
            client, settings.session_idle_timeout, settings.session_absolute_timeout, settings.redis_prefix
        )
        throttle = RedisThrottle(client, settings.throttle, settings.redis_prefix)
    else:
        sessions = DatabaseSessionStore(
            engine, settings.session_idle_timeout, settings.session_absolute_timeout
        )
        # One API process on the embedded default: an in-memory throttle is shared by all its requests.
        throttle = MemoryThrottle(settings.throttle)
    return AuthService(
        settings, make_authenticator(settings), sessions, TokenStore(engine), throttle, AuditLog(engine)
    )


async def _throttled(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, TooManyAttempts)
    # RFC 9110 §10.2.3: Retry-After in seconds tells clients when to try again.
    return JSONResponse(
        exc.to_dict(), status_code=exc.http_status, headers={"Retry-After": str(exc.retry_after)}
    )


async def _session_ended(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, SessionEnded)
    response = JSONResponse(exc.to_dict(), status_code=exc.http_status)
    clear_session_cookies(response, request.app.state.auth.settings, request)
    return response


def install_auth(app: FastAPI, runtime: Any) -> None:
    """Put the :class:`AuthService` on ``app.state.auth`` and answer throttled logins with
    ``Retry-After`` and ended sessions with cookies cleared."""
    app.state.auth = make_auth_service(runtime)
    app.add_exception_handler(TooManyAttempts, _throttled)
    app.add_exception_handler(SessionEnded, _session_ended)
