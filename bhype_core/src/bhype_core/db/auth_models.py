"""Tables of the web/API identity layer: server-side sessions and API tokens (``core_`` prefix)."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from bhype_core.db.models import USER_LENGTH, utcnow
from bhype_core.db.types import ID, TABLE_OPTIONS, UTCDateTime

HASH_LENGTH = 64  # hex SHA-256
ROLE_LENGTH = 16
TOKEN_NAME_LENGTH = 100
TOKEN_PREFIX_LENGTH = 16
ADDRESS_LENGTH = 64


class AuthSession(SQLModel, table=True):
    """Table ``core_auth_session``: one browser session of the embedded session store.

    The primary key is the SHA-256 of the cookie's random value, never the value itself, so a
    copy of this table does not let anyone ride the sessions in it.
    """

    __tablename__ = "core_auth_session"  # type: ignore[assignment]
    __table_args__ = dict(TABLE_OPTIONS)

    key: str = Field(primary_key=True, max_length=HASH_LENGTH)
    username: str = Field(max_length=USER_LENGTH, index=True)
    role: str = Field(max_length=ROLE_LENGTH)
    csrf_token: str = Field(max_length=HASH_LENGTH)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    last_seen_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    checked_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    remote_addr: str | None = Field(default=None, max_length=ADDRESS_LENGTH)


class ApiTokenBase(SQLModel):
    """What a token's owner may see about it (never the secret, never its hash)."""

    name: str = Field(max_length=TOKEN_NAME_LENGTH)
    prefix: str = Field(max_length=TOKEN_PREFIX_LENGTH, description="first characters, to recognise it")
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class ApiToken(ApiTokenBase, table=True):
    """Table ``core_api_token``: an API token, stored as the SHA-256 of its secret."""

    __tablename__ = "core_api_token"  # type: ignore[assignment]
    __table_args__ = dict(TABLE_OPTIONS)

    id: int | None = Field(default=None, primary_key=True, sa_type=ID)
    token_hash: str = Field(max_length=HASH_LENGTH, unique=True, index=True)
    username: str = Field(max_length=USER_LENGTH, index=True)
    role: str = Field(max_length=ROLE_LENGTH)
    checked_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ApiTokenPublic(ApiTokenBase):
    """A token as ``GET /api/v1/auth/tokens`` lists it."""

    id: int


AUTH_MODELS: tuple[type[SQLModel], ...] = (AuthSession, ApiToken)
