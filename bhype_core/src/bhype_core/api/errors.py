"""One JSON error shape for every API failure: ``{"error": {"code", "message", ...}}``."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from bhype_core.errors import BhypeError, ValidationErrors

log = logging.getLogger(__name__)

# What a client sees for a bug: never the exception text, which may hold paths, SQL or secrets.
INTERNAL_MESSAGE = "internal server error (the server log has the details)"


class FieldProblem(BaseModel):
    """One invalid input of a 422 answer."""

    path: str = Field(description="dotted path of the field, e.g. body.disks.0.size or query.offset")
    message: str


class ErrorDetail(BaseModel):
    """What went wrong; some errors add fields of their own (e.g. ``retry_after`` on 429)."""

    model_config = ConfigDict(extra="allow")

    code: str = Field(description="stable machine-readable name, e.g. validation_error, not_found")
    message: str = Field(description="for people; never holds secrets or tracebacks")
    fields: list[FieldProblem] | None = Field(None, description="422 only: every invalid input")
    retry_after: int | None = Field(None, description="429 only: seconds before trying again")


class ErrorResponse(BaseModel):
    """The one JSON shape of every error answer."""

    error: ErrorDetail


# Documented on every operation (the app passes this as its default ``responses``), so the
# OpenAPI document shows bHype's error shape instead of FastAPI's default 422 and nothing else.
ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorResponse, "description": description}
    for status, description in (
        (401, "Not logged in: no, an unknown or an expired session or token"),
        (403, "Logged in, but not allowed (role, object owner, CSRF token)"),
        (404, "No such thing, or one the caller may not see"),
        (409, "Clashes with the current state (name taken, VM running, lock held)"),
        (413, "Request body too large"),
        (422, "Invalid input; error.fields names each bad field"),
        (429, "Too many attempts; error.retry_after and the Retry-After header say when to retry"),
    )
}


def error_response(description: str) -> dict[str, Any]:
    """One entry of a route's ``responses=`` that keeps bHype's error shape: a route giving its
    own description for a status replaces the app's default entry for it, model included."""
    return {"model": ErrorResponse, "description": description}


def error_body(code: str, message: str, **extra: Any) -> dict[str, Any]:
    """The JSON body of every error answer."""
    return {"error": {"code": code, "message": message, **extra}}


def field_path(location: Sequence[Any]) -> str:
    """A pydantic/FastAPI error location as a dotted path: ``("body", "disks", 0)`` → ``body.disks.0``."""
    return ".".join(str(part) for part in location)


def request_validation_error(exc: RequestValidationError) -> ValidationErrors:
    """Turn FastAPI's request validation failure into bHype's :class:`ValidationErrors`."""
    errors = ValidationErrors()
    for problem in exc.errors():
        errors.add(field_path(problem.get("loc", ())), str(problem.get("msg", "invalid value")))
    return errors


async def _bhype_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BhypeError)
    if exc.http_status >= 500:
        # A server-side BhypeError (a failed host command, a plugin error) is worth a log line;
        # its message is meant for users, so it is still sent.
        log.error("%s %s failed: %s", request.method, request.url.path, exc.message)
    return JSONResponse(exc.to_dict(), status_code=exc.http_status)


async def _request_validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    error = request_validation_error(exc)
    return JSONResponse(error.to_dict(), status_code=error.http_status)


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    # Starlette's own errors (unknown route 404, wrong method 405) in the same shape.
    assert isinstance(exc, StarletteHTTPException)
    try:
        phrase = HTTPStatus(exc.status_code).phrase
    except ValueError:  # a non-standard status a route chose
        phrase = "HTTP error"
    code = phrase.lower().replace(" ", "_").replace("-", "_")
    message = exc.detail if isinstance(exc.detail, str) else phrase
    return JSONResponse(error_body(code, message), status_code=exc.status_code, headers=exc.headers)


class UnexpectedErrorMiddleware:
    """Answers any exception a route lets escape with a generic 500 in the error shape.

    A plain ASGI middleware rather than an ``Exception`` handler: Starlette re-raises after
    such a handler, so the server would log the same traceback twice. Once a response has
    started nothing can be sent any more, and the exception propagates.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watch(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, watch)
        except Exception:
            if started:
                raise
            log.exception("unhandled error in %s %s", scope.get("method"), scope.get("path"))
            response = JSONResponse(error_body("internal_error", INTERNAL_MESSAGE), status_code=500)
            await response(scope, receive, send)


def install_error_handlers(app: FastAPI) -> None:
    """Map every :class:`BhypeError`, request validation failure, HTTP error and unexpected
    exception to the one JSON error shape.

    ``BhypeError`` → its ``http_status`` and ``to_dict()``; request validation → 422 with
    ``fields: [{"path": "body.name", "message": …}]``; anything else → 500 with a generic
    message (the traceback goes to the log, never to the client).
    """
    app.add_exception_handler(BhypeError, _bhype_error)
    app.add_exception_handler(RequestValidationError, _request_validation_error)
    app.add_exception_handler(StarletteHTTPException, _http_error)
    app.add_middleware(UnexpectedErrorMiddleware)
