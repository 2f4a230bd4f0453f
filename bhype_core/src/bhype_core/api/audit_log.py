"""Writing identity events (logins, failures, logouts, token use) into ``core_audit_event``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.engine import Engine
from sqlmodel import Session

from bhype_core.db.models import ACTION_LENGTH, REMOTE_ADDR_LENGTH, TARGET_LENGTH, USER_LENGTH, AuditEvent

# An engine, or a callable returning it (the runtime's, built on first use).
EngineSource = Engine | Callable[[], Engine]


def resolve_engine(source: EngineSource) -> Engine:
    """The engine itself, calling ``source`` first if it is a provider."""
    return source if isinstance(source, Engine) else source()


# The actions this layer records, one word each, so the audit log can be filtered by them.
LOGIN = "auth.login"
LOGIN_FAILED = "auth.login_failed"
LOGIN_REFUSED = "auth.login_refused"  # no longer written: a login without a bHype group is a login_failed
LOGIN_THROTTLED = "auth.login_throttled"
LOGOUT = "auth.logout"
SESSION_ENDED = "auth.session_ended"  # timed out, or the account became unusable
TOKEN_CREATED = "auth.token_created"
TOKEN_REVOKED = "auth.token_revoked"
TOKEN_USED = "auth.token_used"
TOKEN_REFUSED = "auth.token_refused"  # expired, or the account became unusable


class AuditLog:
    """Appends audit events. A failed write propagates: an identity event that cannot be
    recorded must not happen silently."""

    def __init__(self, engine: EngineSource) -> None:
        self._engine = engine

    @property
    def engine(self) -> Engine:
        """The database engine (resolved on first use, so building the app connects nothing)."""
        return resolve_engine(self._engine)

    def record(
        self,
        action: str,
        *,
        user: str = "",
        target: str = "",
        remote_addr: str | None = None,
        **detail: Any,
    ) -> None:
        """Store one event; over-long values are cut to the column sizes (an attacker's
        32 KiB user name still leaves a row)."""
        with Session(self.engine) as db:
            db.add(event_row(action, user=user, target=target, remote_addr=remote_addr, **detail))
            db.commit()


def event_row(action: str, *, user: str = "", target: str = "", remote_addr: str | None = None,
              **detail: Any) -> AuditEvent:
    """The row :meth:`AuditLog.record` stores, for a caller that commits it in its own
    transaction (a token use writes its use and its audit event with one commit)."""
    return AuditEvent(
        action=action[:ACTION_LENGTH],
        user=user[:USER_LENGTH],
        target=target[:TARGET_LENGTH],
        detail=detail,
        remote_addr=None if remote_addr is None else remote_addr[:REMOTE_ADDR_LENGTH],
    )
