"""The API's identity rules in one place: login, session and token checks, logout, audit."""

from __future__ import annotations

import hmac
import logging
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, cast

from bhype_core.api.audit_log import (
    LOGIN,
    LOGIN_FAILED,
    LOGIN_THROTTLED,
    LOGOUT,
    SESSION_ENDED,
    TOKEN_REFUSED,
    TOKEN_USED,
    AuditLog,
    event_row,
)
from bhype_core.api.principal import Principal
from bhype_core.api.session_store import (
    SessionRecord,
    SessionStore,
    new_csrf_token,
    new_session_secret,
    session_key,
)
from bhype_core.api.token_uses import TokenUseWriter
from bhype_core.api.tokens import TokenStore
from bhype_core.auth.authenticator import Authenticator
from bhype_core.auth.identity import Identity, NotInBhypeGroup, Role
from bhype_core.auth.pam import LoginFailed
from bhype_core.auth.settings import AuthSettings
from bhype_core.auth.throttle import Throttle, TooManyAttempts
from bhype_core.db.auth_models import ApiToken
from bhype_core.errors import Forbidden, NotFound, Unauthorized

log = logging.getLogger("bhype.auth")

# A session's last_seen_at is written back only when it moved by this fraction of the idle
# timeout (at most TOUCH_MAX_SECONDS): one write per request would make every GET a database
# write, and the idle timeout loses at most 1 % of its length.
TOUCH_FRACTION = 0.01
TOUCH_MAX_SECONDS = 10.0
# A token's use by a request of these methods is stored after the answer went out, by the token
# use writer (:mod:`bhype_core.api.token_uses`); any other request stores it before it runs.
DEFERRED_USE_METHODS = frozenset({"GET", "HEAD"})


class SessionEnded(Unauthorized):
    """The session cookie names no live session (unknown, logged out, timed out, or the account
    became unusable). The answer also clears the cookie."""

    code = "session_ended"


class TokenRefused(Unauthorized):
    """The bearer token is unknown, revoked, expired, or its account is no longer usable."""

    code = "invalid_token"


class CsrfFailed(Forbidden):
    """A state-changing request authenticated by cookie came without the session's CSRF token."""

    code = "csrf_failed"


@dataclass(frozen=True)
class Authenticated:
    """How this request authenticated: the principal, and the session or token behind it."""

    principal: Principal
    method: Literal["session", "token"]
    session: SessionRecord | None = None
    token_id: int | None = None
    # A token use handed to the writer: the request's background task waits for it.
    pending_use: Future[None] | None = field(default=None, compare=False, repr=False)


class AuthService:
    """Everything the guard and the auth routes need. Every method blocks (database, Redis,
    the privileged socket): call them from sync routes or through a thread."""

    def __init__(
        self,
        settings: AuthSettings,
        authenticator: Authenticator,
        sessions: SessionStore,
        tokens: TokenStore,
        throttle: Throttle,
        audit: AuditLog,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self.authenticator = authenticator
        self.sessions = sessions
        self.tokens = tokens
        self.throttle = throttle
        self.audit = audit
        self.clock = clock
        self.uses = TokenUseWriter(lambda: tokens.engine)

    # --- login and logout -------------------------------------------------------------------

    def login(
        self, username: str, password: str, address: str, replaces: str | None = None
    ) -> tuple[SessionRecord, str, Identity]:
        """Check the throttle, authenticate, open a session; returns it with the cookie secret.

        A new session always gets a new random id (no session fixation); ``replaces``, the
        cookie the browser still sent, is ended once the new session exists.

        :raises TooManyAttempts: 429, before any password check.
        :raises LoginFailed: 401, counted by the throttle; also for an account in no bHype
            group, whose password is never checked (see :mod:`bhype_core.auth.login`).
        """
        try:
            self.throttle.check(username, address)
        except TooManyAttempts as exc:
            self.audit.record(
                LOGIN_THROTTLED, user=username, remote_addr=address, retry_after=exc.retry_after
            )
            raise
        try:
            identity = self.authenticator.authenticate(username, password)
        except TooManyAttempts as exc:  # the privileged daemon's own limit
            self.audit.record(
                LOGIN_THROTTLED, user=username, remote_addr=address, retry_after=exc.retry_after, by="daemon"
            )
            raise
        except LoginFailed:
            self.throttle.record_failure(username, address)
            self.audit.record(LOGIN_FAILED, user=username, remote_addr=address)
            raise
        self.throttle.record_success(username, address)
        secret = new_session_secret()
        now = self.clock()
        record = SessionRecord(
            key=session_key(secret),
            username=identity.username,
            role=identity.role,
            csrf_token=new_csrf_token(),
            created_at=now,
            last_seen_at=now,
            checked_at=now,
            remote_addr=address or None,
        )
        self.sessions.create(record)
        if replaces:
            self.sessions.delete(session_key(replaces))
        self.audit.record(
            LOGIN,
            user=identity.username,
            remote_addr=address,
            role=identity.role,
            backend=self.authenticator.name,
        )
        return record, secret, identity

    def logout(self, record: SessionRecord, address: str) -> None:
        """End the session now."""
        self.sessions.delete(record.key)
        self.audit.record(LOGOUT, user=record.username, remote_addr=address)

    # --- per request ------------------------------------------------------------------------

    def session(
        self, secret: str, address: str, csrf: str | None = None, *, unsafe: bool = False
    ) -> Authenticated:
        """The live session behind a cookie value, touched; for an ``unsafe`` (state-changing)
        request the ``csrf`` header must equal the session's token.

        :raises SessionEnded: unknown, timed out (idle or absolute), or account unusable.
        :raises CsrfFailed: ``unsafe`` without the right token.
        """
        record = self.sessions.get(session_key(secret))
        if record is None:
            raise SessionEnded("not logged in (the session is unknown or has ended); log in again")
        now = self.clock()
        if now - record.created_at >= self.settings.session_absolute_timeout:
            self._end(record, address, "absolute timeout")
            raise SessionEnded("the session has expired (absolute timeout); log in again")
        if now - record.last_seen_at >= self.settings.session_idle_timeout:
            self._end(record, address, "idle timeout")
            raise SessionEnded("the session has expired (idle timeout); log in again")
        checked = now - record.checked_at >= self.settings.account_recheck_interval
        if checked:
            status = self.authenticator.account_status(record.username)
            if not status.usable:
                self._end(record, address, f"account unusable: {status.reason}")
                raise SessionEnded("this account can no longer log in; the session has ended")
        if unsafe and not (csrf and hmac.compare_digest(csrf.encode(), record.csrf_token.encode())):
            raise CsrfFailed(
                "missing or wrong X-CSRF-Token header (cookie-authenticated requests that "
                "change state need the token from login or GET /api/v1/auth/me)"
            )
        threshold = min(TOUCH_MAX_SECONDS, self.settings.session_idle_timeout * TOUCH_FRACTION)
        if checked or now - record.last_seen_at >= threshold:
            record = record.touched(now, checked=checked)
            self.sessions.save(record)
        principal = Principal(record.username, cast(Role, record.role))
        return Authenticated(principal, "session", session=record)

    def _end(self, record: SessionRecord, address: str, reason: str) -> None:
        self.sessions.delete(record.key)
        self.audit.record(SESSION_ENDED, user=record.username, remote_addr=address, reason=reason)

    def cached_token(self, secret: str, address: str, method: str, path: str) -> Authenticated | None:
        """:meth:`token` for a read request whose token this process read moments ago, without
        blocking (no query: its use goes to the writer); ``None`` whenever the answer needs the
        database (unknown here, expired, re-check due, a method that records its use at once).
        """
        if method not in DEFERRED_USE_METHODS:
            return None
        row = self.tokens.cached(secret)
        if row is None:
            return None
        now = datetime.fromtimestamp(self.clock(), UTC)
        if row.expires_at is not None and row.expires_at <= now:
            return None
        if (now - row.checked_at).total_seconds() >= self.settings.account_recheck_interval:
            return None
        return self._used(row, now, address, method, path, checked=False, role=row.role)

    def token(self, secret: str, address: str, method: str, path: str) -> Authenticated:
        """The token behind ``Authorization: Bearer``; every use is recorded and audited (a
        GET/HEAD's after the answer, see :mod:`bhype_core.api.token_uses`; the row itself may
        come from this process's cache, :data:`bhype_core.api.tokens.TOKEN_CACHE_SECONDS`).

        :raises TokenRefused: unknown, revoked, expired, or account unusable / no bHype group.
        """
        row = self.tokens.find(secret)
        if row is None:
            raise TokenRefused("invalid or revoked API token")
        assert row.id is not None
        target = f"token:{row.id}"
        now = datetime.fromtimestamp(self.clock(), UTC)
        if row.expires_at is not None and row.expires_at <= now:
            self.audit.record(
                TOKEN_REFUSED, user=row.username, target=target, remote_addr=address, reason="expired"
            )
            raise TokenRefused("this API token has expired; create a new one")
        role = row.role
        checked = (now - row.checked_at).total_seconds() >= self.settings.account_recheck_interval
        if checked:
            fresh, reason = self._recheck_token_account(row.username)
            if fresh is None:
                self.audit.record(
                    TOKEN_REFUSED, user=row.username, target=target, remote_addr=address, reason=reason
                )
                raise TokenRefused("this API token's account can no longer log in")
            role = fresh
        return self._used(row, now, address, method, path, checked=checked, role=role)

    def _used(self, row: ApiToken, now: datetime, address: str, method: str, path: str, *, checked: bool,
              role: str) -> Authenticated:
        assert row.id is not None
        used = event_row(TOKEN_USED, user=row.username, target=f"token:{row.id}", remote_addr=address,
                         method=method, path=path)
        pending = None
        if method in DEFERRED_USE_METHODS and not checked:
            pending = self.uses.submit(row.id, now, used)
        else:
            self.tokens.mark_used(row.id, now, checked=checked, role=role if checked else None, audit=used)
        return Authenticated(Principal(row.username, cast(Role, role)), "token", token_id=row.id,
                             pending_use=pending)

    def _recheck_token_account(self, username: str) -> tuple[Role | None, str]:
        """The account's current role, or ``None`` and why it may not use its tokens any more.

        Tokens have no "next login" at which a group change would take effect, so their role is
        refreshed here; leaving every bHype group ends them like a locked account.
        """
        status = self.authenticator.account_status(username)
        if not status.usable:
            return None, f"account unusable: {status.reason}"
        try:
            return self.authenticator.role(username), ""
        except NotInBhypeGroup:
            return None, "no bHype group"
        except (KeyError, NotFound):
            return None, "no such user"
