"""Server-side browser sessions: one interface, an embedded (database) and a Redis implementation."""

from __future__ import annotations

import hashlib
import json
import math
import secrets
from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, or_, update
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from bhype_core.api.audit_log import EngineSource, resolve_engine
from bhype_core.db.auth_models import AuthSession

# 256 random bits: guessing a live session is hopeless, so a fast hash suffices to store it.
SESSION_BYTES = 32
CSRF_BYTES = 32


def new_session_secret() -> str:
    """A fresh cookie value (URL-safe, 43 characters)."""
    return secrets.token_urlsafe(SESSION_BYTES)


def session_key(secret: str) -> str:
    """What the store keeps instead of the cookie value: its SHA-256 in hex."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def new_csrf_token() -> str:
    """A fresh synchronizer token for one session."""
    return secrets.token_urlsafe(CSRF_BYTES)


@dataclass(frozen=True)
class SessionRecord:
    """One session as every store keeps it; times are epoch seconds (``time.time()``)."""

    key: str
    username: str
    role: str
    csrf_token: str
    created_at: float
    last_seen_at: float
    checked_at: float
    remote_addr: str | None = None

    def touched(self, now: float, *, checked: bool = False) -> SessionRecord:
        """This record seen at ``now`` (and re-checked then, when ``checked``)."""
        return replace(self, last_seen_at=now, checked_at=now if checked else self.checked_at)


class SessionStore(ABC):
    """Where sessions live. Expiry rules are the caller's (:mod:`bhype_core.api.auth_service`);
    a store only needs to forget sessions eventually (``purge``, or Redis TTLs)."""

    @abstractmethod
    def create(self, record: SessionRecord) -> None:
        """Store a new session."""

    @abstractmethod
    def get(self, key: str) -> SessionRecord | None:
        """The session with this key, or ``None``."""

    @abstractmethod
    def save(self, record: SessionRecord) -> None:
        """Write back ``last_seen_at``/``checked_at`` of an existing session (no-op if gone)."""

    @abstractmethod
    def delete(self, key: str) -> bool:
        """Forget one session; whether it existed."""

    def close(self) -> None:  # noqa: B027 (optional)
        """Release connections."""


def _dt(epoch: float) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


class DatabaseSessionStore(SessionStore):
    """The embedded default: table ``core_auth_session`` in the core database (SQLite or MariaDB).

    Expired rows are purged whenever a session is created, so the table stays as small as the
    number of live sessions without a periodic job.
    """

    def __init__(self, engine: EngineSource, idle_timeout: float, absolute_timeout: float) -> None:
        self._engine = engine
        self.idle_timeout = idle_timeout
        self.absolute_timeout = absolute_timeout

    @property
    def engine(self) -> Engine:
        """The database engine (resolved on first use, so building the app connects nothing)."""
        return resolve_engine(self._engine)

    def create(self, record: SessionRecord) -> None:
        with Session(self.engine) as db:
            db.exec(  # type: ignore[call-overload]
                delete(AuthSession).where(
                    or_(
                        col(AuthSession.last_seen_at) < _dt(record.created_at - self.idle_timeout),
                        col(AuthSession.created_at) < _dt(record.created_at - self.absolute_timeout),
                    )
                )
            )
            db.add(
                AuthSession(
                    key=record.key,
                    username=record.username,
                    role=record.role,
                    csrf_token=record.csrf_token,
                    created_at=_dt(record.created_at),
                    last_seen_at=_dt(record.last_seen_at),
                    checked_at=_dt(record.checked_at),
                    remote_addr=record.remote_addr,
                )
            )
            db.commit()

    def get(self, key: str) -> SessionRecord | None:
        with Session(self.engine) as db:
            row = db.get(AuthSession, key)
            if row is None:
                return None
            return SessionRecord(
                key=row.key,
                username=row.username,
                role=row.role,
                csrf_token=row.csrf_token,
                created_at=row.created_at.timestamp(),
                last_seen_at=row.last_seen_at.timestamp(),
                checked_at=row.checked_at.timestamp(),
                remote_addr=row.remote_addr,
            )

    def save(self, record: SessionRecord) -> None:
        with Session(self.engine) as db:
            db.exec(  # type: ignore[call-overload]
                update(AuthSession)
                .where(AuthSession.key == record.key)  # type: ignore[arg-type]
                .values(last_seen_at=_dt(record.last_seen_at), checked_at=_dt(record.checked_at))
            )
            db.commit()

    def delete(self, key: str) -> bool:
        with Session(self.engine) as db:
            result = db.exec(delete(AuthSession).where(AuthSession.key == key))  # type: ignore[call-overload,arg-type]
            db.commit()
            return bool(result.rowcount)


class RedisSessionStore(SessionStore):
    """Sessions in Redis (``core.redis_url`` set): shared by every API process, forgotten by
    Redis itself once they can no longer be valid.

    Each session is one JSON string at ``<prefix>session:<key>`` whose TTL is the earlier of its
    idle and absolute deadlines, renewed on every save.
    """

    def __init__(
        self, client: Any, idle_timeout: float, absolute_timeout: float, prefix: str = "bhype:auth:"
    ):
        self.client = client
        self.idle_timeout = idle_timeout
        self.absolute_timeout = absolute_timeout
        self.prefix = prefix

    def _name(self, key: str) -> str:
        return f"{self.prefix}session:{key}"

    def _ttl_ms(self, record: SessionRecord) -> int:
        deadline = min(record.last_seen_at + self.idle_timeout, record.created_at + self.absolute_timeout)
        # Never below 1 ms (Redis refuses 0); an already-dead session is deleted by the caller.
        return max(1, math.ceil((deadline - record.last_seen_at) * 1000))

    def create(self, record: SessionRecord) -> None:
        self.client.set(self._name(record.key), json.dumps(asdict(record)), px=self._ttl_ms(record))

    def get(self, key: str) -> SessionRecord | None:
        data = self.client.get(self._name(key))
        if data is None:
            return None
        try:
            return SessionRecord(**json.loads(data))
        except (TypeError, ValueError):
            # A value this version cannot read is no session (and never a 500).
            return None

    def save(self, record: SessionRecord) -> None:
        # XX: only if it still exists, so a concurrent logout is not undone.
        self.client.set(self._name(record.key), json.dumps(asdict(record)), px=self._ttl_ms(record), xx=True)

    def delete(self, key: str) -> bool:
        return bool(self.client.delete(self._name(key)))

    def close(self) -> None:
        self.client.close()
