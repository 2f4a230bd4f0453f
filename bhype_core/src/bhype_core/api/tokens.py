"""API tokens for automation: created with a random secret shown once, stored as its SHA-256."""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import insert, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from bhype_core.api.audit_log import EngineSource, resolve_engine
from bhype_core.db.auth_models import TOKEN_PREFIX_LENGTH, ApiToken, ApiTokenPublic
from bhype_core.db.models import utcnow
from bhype_core.db.session import session

# Every token starts with this, so secret scanners and people can recognise a leaked one.
TOKEN_MARK = "bhype_"
TOKEN_BYTES = 32  # 256 random bits
# Longest Authorization value worth hashing; anything longer is not one of ours.
MAX_TOKEN_LENGTH = 200
# Seconds a token row read for a request answers later requests of this process without a
# query (issue 15). A revocation through this process drops it at once; one made elsewhere (the
# API of another group host) takes effect here within this time. Expiry is still checked against
# the clock on every request, and an account re-check always reads the row again.
TOKEN_CACHE_SECONDS = 5.0
TOKEN_CACHE_SIZE = 10_000  # rows at most (past that the cache starts over)


def hash_token(secret: str) -> str:
    """The stored form of a token: SHA-256 of the whole secret, hex.

    A plain fast hash is enough here, unlike for passwords: the secret is 256 random bits, so
    there is nothing to guess, and a stolen table of hashes cannot be turned back into tokens.
    A slow KDF would only add its cost to every API request. The hash is also the lookup key,
    so checking a token is one indexed query, and no timing comparison of secrets is involved.
    """
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_token_secret() -> str:
    """A fresh token: ``bhype_`` and 43 URL-safe characters."""
    return TOKEN_MARK + secrets.token_urlsafe(TOKEN_BYTES)


@dataclass(frozen=True)
class CreatedToken:
    """A token right after creation: the only moment its secret exists outside the client."""

    token: ApiTokenPublic
    secret: str


class TokenStore:
    """Tokens in table ``core_api_token``; every method takes the owner, so nobody reaches
    another user's token through it."""

    def __init__(self, engine: EngineSource, cache_seconds: float = TOKEN_CACHE_SECONDS,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self._engine = engine
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cache: dict[str, tuple[float, ApiToken]] = {}  # token hash -> (read at, row)
        self._cache_lock = threading.Lock()

    @property
    def engine(self) -> Engine:
        """The database engine (resolved on first use, so building the app connects nothing)."""
        return resolve_engine(self._engine)

    def create(self, username: str, role: str, name: str, expires_in: float | None = None) -> CreatedToken:
        """Create a token for ``username`` (``role`` as of now), valid ``expires_in`` seconds or
        until revoked when ``None``."""
        secret = new_token_secret()
        now = utcnow()
        row = ApiToken(
            name=name,
            prefix=secret[:TOKEN_PREFIX_LENGTH],
            created_at=now,
            expires_at=None if expires_in is None else now + timedelta(seconds=expires_in),
            token_hash=hash_token(secret),
            username=username,
            role=role,
            checked_at=now,
        )
        with Session(self.engine, expire_on_commit=False) as db:
            db.add(row)
            db.commit()
        return CreatedToken(public(row), secret)

    def list(self, username: str) -> list[ApiTokenPublic]:
        """``username``'s tokens, oldest first."""
        with Session(self.engine) as db:
            rows = db.exec(select(ApiToken).where(ApiToken.username == username).order_by(col(ApiToken.id)))
            return [public(row) for row in rows]

    def delete(self, token_id: int, username: str) -> bool:
        """Revoke ``username``'s token ``token_id``; ``False`` if no such token of theirs."""
        with session(self.engine, write=True) as db:
            row = db.get(ApiToken, token_id)
            if row is None or row.username != username:
                return False
            db.delete(row)
        self.forget(token_id)
        return True

    def find(self, secret: str) -> ApiToken | None:
        """The token whose secret this is, or ``None`` (unknown, revoked or malformed); a row
        read within :data:`TOKEN_CACHE_SECONDS` comes from memory."""
        if not secret.startswith(TOKEN_MARK) or len(secret) > MAX_TOKEN_LENGTH:
            return None
        key = hash_token(secret)
        row = self._cached(key)
        if row is not None:
            return row
        with Session(self.engine, expire_on_commit=False) as db:
            row = db.exec(select(ApiToken).where(ApiToken.token_hash == key)).first()
        if row is not None:
            with self._cache_lock:
                if len(self._cache) >= TOKEN_CACHE_SIZE:
                    self._cache.clear()
                self._cache[key] = (self._clock(), row)
        return row

    def cached(self, secret: str) -> ApiToken | None:
        """The row :meth:`find` would answer from memory, or ``None`` (never a query: for a
        caller that must not block)."""
        if not secret.startswith(TOKEN_MARK) or len(secret) > MAX_TOKEN_LENGTH:
            return None
        return self._cached(hash_token(secret))

    def _cached(self, key: str) -> ApiToken | None:
        with self._cache_lock:
            entry = self._cache.get(key)
            if entry is None:
                return None
            if self._clock() - entry[0] >= self._cache_seconds:
                del self._cache[key]
                return None
            return entry[1]

    def forget(self, token_id: int) -> None:
        """Drop token ``token_id`` from this process's cache (revoked, or its role re-read)."""
        with self._cache_lock:
            for key in [key for key, (_, row) in self._cache.items() if row.id == token_id]:
                del self._cache[key]

    def mark_used(
        self, token_id: int, when: datetime, *, checked: bool, role: str | None = None, audit: Any = None
    ) -> None:
        """Record a use (and a re-check of the account, with its refreshed ``role``); ``audit``,
        an audit event row, is stored in the same transaction (one commit per request: on
        MariaDB each commit is a log flush, issue 15)."""
        values: dict[str, object] = {"last_used_at": when}
        if checked:
            values["checked_at"] = when
        if role is not None:
            values["role"] = role
        # Core statements, not the ORM: a session's flush cost more than both writes (issue 15).
        with self.engine.begin() as connection:
            connection.execute(update(ApiToken).where(col(ApiToken.id) == token_id).values(**values))
            if audit is not None:
                table = type(audit).__table__
                connection.execute(insert(table).values(**audit.model_dump(exclude={"id"})))
        if checked:
            self.forget(token_id)  # the next request reads the re-checked row


def public(row: ApiToken) -> ApiTokenPublic:
    """What the owner may see of a token row."""
    assert row.id is not None
    return ApiTokenPublic(
        id=row.id,
        name=row.name,
        prefix=row.prefix,
        created_at=row.created_at,
        expires_at=row.expires_at,
        last_used_at=row.last_used_at,
    )
