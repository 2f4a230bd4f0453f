"""``/api/v1/auth``: log in and out with a local account, who am I, and personal API tokens."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Annotated, Any, Literal
from urllib.parse import parse_qs

from fastapi import APIRouter, Path, Request, Response
from pydantic import BaseModel, Field, field_validator

from bhype_core.api.audit_log import TOKEN_CREATED, TOKEN_REVOKED
from bhype_core.api.cookies import clear_session_cookies, set_session_cookies
from bhype_core.api.errors import error_response
from bhype_core.api.limits import RowId
from bhype_core.api.principal import PrincipalDep
from bhype_core.api.security import PUBLIC, AuthenticatedDep, AuthServiceDep, client_address
from bhype_core.db.auth_models import TOKEN_NAME_LENGTH, ApiTokenPublic
from bhype_core.errors import BhypeError, Forbidden, NotFound, ValidationErrors

MAX_LOGIN_BODY = 16 * 1024  # bytes; a name and a password, never more
MAX_TOKEN_LIFETIME = 10 * 366 * 86400  # seconds

LOGIN_BODY_SCHEMA = {
    "type": "object",
    "required": ["username", "password"],
    "properties": {"username": {"type": "string"}, "password": {"type": "string", "format": "password"}},
}


class NotASession(BhypeError):
    """The request authenticated with a token where only a login session makes sense."""

    code = "not_a_session"
    http_status = 400


class UserPublic(BaseModel):
    """The logged-in account."""

    name: str
    role: Literal["admin", "operator"]
    groups: list[str] | None = None


class SessionPublic(BaseModel):
    """A session's deadlines (epoch-independent ISO times)."""

    created_at: datetime
    expires_at: datetime = Field(description="absolute end, however active the session is")
    idle_timeout: float = Field(description="seconds without a request before the session ends")


class LoginResult(BaseModel):
    """A new session: the cookie is set; send ``csrf_token`` as ``X-CSRF-Token`` on every
    state-changing request."""

    user: UserPublic
    csrf_token: str
    session: SessionPublic


class Me(BaseModel):
    """Who is calling, and how (``session`` cookie or ``token``)."""

    user: UserPublic
    method: Literal["session", "token"]
    csrf_token: str | None = None
    session: SessionPublic | None = None
    token_id: int | None = None


class TokenCreate(BaseModel):
    """A new token: a name to recognise it by, and optionally a lifetime in seconds."""

    name: str = Field(min_length=1, max_length=TOKEN_NAME_LENGTH)
    expires_in: int | None = Field(
        default=None, ge=1, le=MAX_TOKEN_LIFETIME, description="seconds; null = never"
    )

    @field_validator("name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if value != value.strip() or not value.isprintable():
            raise ValueError("must be printable and not start or end with spaces")
        return value


class TokenCreated(ApiTokenPublic):
    """The token, including its secret: shown this once, never again."""

    token: str


class TokenList(BaseModel):
    """The caller's tokens, oldest first (no secrets)."""

    tokens: list[ApiTokenPublic]


async def read_credentials(request: Request) -> tuple[str, str]:
    """``username`` and ``password`` from a JSON or an HTML-form body; errors name the field."""
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    body = await request.body()
    errors = ValidationErrors()
    if len(body) > MAX_LOGIN_BODY:
        errors.add("body", f"larger than {MAX_LOGIN_BODY} bytes")
        errors.raise_if_any()
    data: Any
    if content_type == "application/json":
        try:
            data = json.loads(body or b"null")
        except (ValueError, RecursionError):
            data = None
        if not isinstance(data, dict):
            errors.add("body", "must be a JSON object with username and password")
            errors.raise_if_any()
    elif content_type == "application/x-www-form-urlencoded":
        try:
            fields = parse_qs(
                body.decode("utf-8"), keep_blank_values=True, strict_parsing=False, max_num_fields=20
            )
        except (UnicodeDecodeError, ValueError):
            fields = {}
        data = {key: values[0] for key, values in fields.items()}
    else:
        errors.add("body", "send application/json or application/x-www-form-urlencoded")
        errors.raise_if_any()
    username, password = data.get("username"), data.get("password")
    if not isinstance(username, str) or not username:
        errors.add("username", "must be a non-empty string")
    if not isinstance(password, str):
        errors.add("password", "must be a string")
    errors.raise_if_any()
    return username, password


def _session_public(service: Any, created_at: float) -> SessionPublic:
    settings = service.settings
    return SessionPublic(
        created_at=datetime.fromtimestamp(created_at, UTC),
        expires_at=datetime.fromtimestamp(created_at + settings.session_absolute_timeout, UTC),
        idle_timeout=settings.session_idle_timeout,
    )


def make_router() -> APIRouter:
    """Build the auth router (a fresh one per app)."""
    router = APIRouter(prefix="/api/v1/auth", tags=["auth"])

    @router.post(
        "/login",
        response_model=LoginResult,
        dependencies=[PUBLIC],
        responses={
            401: error_response("wrong name or password, or an account in no bHype group"),
            429: error_response("too many failures; see Retry-After"),
        },
        openapi_extra={
            "requestBody": {
                "required": True,
                "content": {
                    "application/json": {"schema": LOGIN_BODY_SCHEMA},
                    "application/x-www-form-urlencoded": {"schema": LOGIN_BODY_SCHEMA},
                },
            }
        },
    )
    async def login(request: Request, service: AuthServiceDep) -> Response:
        """Log in with a local account's name and password (PAM); sets the session cookie."""
        username, password = await read_credentials(request)
        address = client_address(request)
        # PAM (through the daemon) and the stores block: keep them off the event loop.
        previous = request.cookies.get(service.settings.cookie_name)
        record, secret, identity = await asyncio.to_thread(
            service.login, username, password, address, replaces=previous
        )
        result = LoginResult(
            user=UserPublic(name=identity.username, role=identity.role, groups=list(identity.groups)),
            csrf_token=record.csrf_token,
            session=_session_public(service, record.created_at),
        )
        response = Response(result.model_dump_json(), media_type="application/json")
        set_session_cookies(response, service.settings, request, secret, record.csrf_token)
        return response

    @router.post("/logout", status_code=204, response_class=Response)
    def logout(request: Request, service: AuthServiceDep, auth: AuthenticatedDep) -> Response:
        """End this login session and clear its cookies (tokens are revoked with DELETE)."""
        if auth.session is None:
            raise NotASession(
                "logout ends a login session; revoke a token with DELETE /api/v1/auth/tokens/{id}"
            )
        service.logout(auth.session, client_address(request))
        response = Response(status_code=204)
        clear_session_cookies(response, service.settings, request)
        return response

    @router.get("/me", response_model=Me, response_model_exclude_none=True)
    def me(service: AuthServiceDep, auth: AuthenticatedDep) -> Me:
        """Who is calling, by which method; for a session also its CSRF token and deadlines."""
        user = UserPublic(name=auth.principal.name, role=auth.principal.role)
        if auth.session is not None:
            return Me(
                user=user,
                method="session",
                csrf_token=auth.session.csrf_token,
                session=_session_public(service, auth.session.created_at),
            )
        return Me(user=user, method="token", token_id=auth.token_id)

    @router.post("/tokens", status_code=201, response_model=TokenCreated)
    def create_token(
        body: TokenCreate, request: Request, service: AuthServiceDep, auth: AuthenticatedDep
    ) -> TokenCreated:
        """Create an API token for yourself; its secret is in this answer only."""
        if auth.session is None:
            # A stolen token must not be able to mint longer-lived ones.
            raise Forbidden("API tokens are created from a login session, not with another token")
        principal = auth.principal
        created = service.tokens.create(principal.name, principal.role, body.name, body.expires_in)
        service.audit.record(
            TOKEN_CREATED,
            user=principal.name,
            target=f"token:{created.token.id}",
            remote_addr=client_address(request),
            name=body.name,
            expires_at=created.token.expires_at.isoformat() if created.token.expires_at else None,
        )
        return TokenCreated(**created.token.model_dump(), token=created.secret)

    @router.get("/tokens", response_model=TokenList)
    def list_tokens(service: AuthServiceDep, principal: PrincipalDep) -> TokenList:
        """Your API tokens (name, prefix, created, expiry, last use); never their secrets."""
        return TokenList(tokens=service.tokens.list(principal.name))

    @router.delete("/tokens/{token_id}", status_code=204, response_class=Response)
    def revoke_token(
        token_id: Annotated[RowId, Path()],
        request: Request,
        service: AuthServiceDep,
        principal: PrincipalDep,
    ) -> Response:
        """Revoke one of your API tokens; it stops working at once."""
        if not service.tokens.delete(token_id, principal.name):
            # Someone else's token answers exactly like a missing one: nothing leaks.
            raise NotFound(f"you have no API token with id {token_id}")
        service.audit.record(
            TOKEN_REVOKED,
            user=principal.name,
            target=f"token:{token_id}",
            remote_addr=client_address(request),
        )
        return Response(status_code=204)

    return router
