"""``[auth]`` settings: PAM service, group-to-role mapping, sessions, throttling, privileged channel."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from bhype_core.section import Section

# Where the privileged daemon listens; /var/run is /run on Debian and the rc.d convention on
# FreeBSD (hier(7)), so one default serves both.
DEFAULT_PRIVILEGED_SOCKET = Path("/var/run/bhype/auth.sock")


def default_admin_groups(platform: str | None = None) -> list[str]:
    """Groups whose members are admins by default: ``bhype-admin``, plus ``wheel`` on FreeBSD.

    FreeBSD's ``wheel`` is the group allowed to ``su`` to root (su(1)), so its members already
    administer the host; on Linux ``wheel`` has no such fixed meaning and is not trusted.
    The platform is read when settings are built, never at import time.
    """
    platform = platform or sys.platform
    return ["bhype-admin", "wheel"] if platform.startswith("freebsd") else ["bhype-admin"]


class ThrottleSettings(Section):
    """``[auth.throttle]``: failed logins allowed per sliding window before "try again in N s".

    Three limits, as OWASP's Authentication Cheat Sheet and NIST SP 800-63B (5.2.2) advise: a
    tight one per (account, address) pair slows one attacker guessing one account; a wider
    per-account ceiling stops guessing spread over many addresses without letting one address
    lock the real owner out; a per-address one stops one address trying many accounts, loose
    enough that a NAT's users do not lock each other out.
    """

    window_seconds: float = Field(default=900.0, gt=0, description="length of the sliding window")
    pair_failures: int = Field(
        default=5, ge=1, description="failures per (account name, client address) pair within the window"
    )
    account_failures: int = Field(
        default=50, ge=1, description="failures per account name from all addresses within the window"
    )
    address_failures: int = Field(
        default=100, ge=1, description="failures per client address for all accounts within the window"
    )
    daemon_account_failures: int = Field(
        default=100,
        ge=1,
        description="the privileged daemon's own limit: failures per account name within the window, "
        "whatever the API process asks (keep it above account_failures)",
    )
    max_keys: int = Field(
        default=100_000, ge=100, description="in-memory store: most accounts/addresses tracked"
    )


class AuthSettings(Section):
    """``[auth]``: how users log in and what they may do (issue 3, "Identity")."""

    pam_service: str = Field(default="bhype", description="PAM service name (/etc/pam.d/<name>)")
    admin_groups: list[str] = Field(
        default_factory=default_admin_groups, description="local groups whose members are admins"
    )
    operator_groups: list[str] = Field(
        default_factory=lambda: ["bhype"], description="local groups whose members are operators"
    )
    # Floats with no lower bound beyond > 0: tests use second-long sessions; production keeps
    # the defaults (30 min idle, 12 h absolute).
    session_idle_timeout: float = Field(
        default=1800.0, gt=0, description="seconds without a request before a session ends"
    )
    session_absolute_timeout: float = Field(
        default=43200.0, gt=0, description="seconds after login before a session ends, used or not"
    )
    account_recheck_interval: float = Field(
        default=60.0,
        ge=0,
        description="seconds between re-checks that a session's or token's OS account is still usable "
        "(0 = every request)",
    )
    failure_min_seconds: float = Field(
        default=1.0,
        ge=0,
        le=30,
        description="every failed login answers no sooner than this (hides which accounts exist)",
    )
    throttle: ThrottleSettings = Field(default_factory=ThrottleSettings)
    privileged_socket: Path = Field(
        default=DEFAULT_PRIVILEGED_SOCKET, description="Unix socket of the privileged authentication daemon"
    )
    privileged_socket_group: str = Field(
        default="bhype", description="group owning the socket (mode 0660); the API user must be a member"
    )
    api_user: str = Field(default="bhype", description="the only local user the privileged daemon answers")
    privileged_timeout: float = Field(
        default=10.0, gt=0, le=120, description="client timeout per request, seconds"
    )
    backend: Literal["daemon", "in-process"] = Field(
        default="daemon",
        description="how the API checks passwords: the privileged daemon (default, everywhere), or "
        "in-process PAM (development only: the API process itself must be allowed to run PAM)",
    )
    session_store: Literal["auto", "database", "redis"] = Field(
        default="auto",
        description="where sessions (and the login throttle) live; auto = redis when core.redis_url is set",
    )
    redis_prefix: str = Field(
        default="bhype:auth:", description="prefix of every Redis key of sessions and the throttle"
    )
    cookie_name: str = Field(default="bhype_session", description="name of the session cookie")
    cookie_secure: Literal["auto", "always", "never"] = Field(
        default="auto", description="Secure cookie flag; auto = when the request came over HTTPS"
    )

    @field_validator("pam_service")
    @classmethod
    def _service_name(cls, value: str) -> str:
        # A service name becomes a file name under /etc/pam.d: no path tricks.
        if not value or "/" in value or value.startswith(".") or "\0" in value:
            raise ValueError("must be a plain file name such as 'bhype'")
        return value

    @field_validator("admin_groups", "operator_groups")
    @classmethod
    def _group_names(cls, value: list[str]) -> list[str]:
        for name in value:
            if not name or ":" in name or "," in name or name != name.strip():
                raise ValueError(f"{name!r} is not a valid group name")
        return value

    @field_validator("cookie_name")
    @classmethod
    def _cookie_name(cls, value: str) -> str:
        # RFC 6265 cookie-name is an HTTP token: no separators, spaces or control characters.
        separators = '()<>@,;:\\"/[]?={} \t'
        if not value or any(c in separators for c in value) or not (value.isascii() and value.isprintable()):
            raise ValueError("must be a plain token such as 'bhype_session'")
        return value

    @model_validator(mode="after")
    def _timeouts(self) -> AuthSettings:
        if self.session_absolute_timeout < self.session_idle_timeout:
            raise ValueError("session_absolute_timeout must not be shorter than session_idle_timeout")
        return self
