"""``[auth]`` settings: PAM service, group-to-role mapping, sessions, throttling, privileged channel."""

from __future__ import annotations

import sys
from pathlib import Path

from pydantic import Field, field_validator, model_validator

from bhype_core.config import Section

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
    """``[auth.throttle]``: failed logins allowed per sliding window before "try again in N s"."""

    window_seconds: float = Field(default=900.0, gt=0, description="length of the sliding window")
    account_failures: int = Field(default=5, ge=1, description="failures per account name within the window")
    address_failures: int = Field(
        default=20, ge=1, description="failures per client address within the window"
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
    session_idle_timeout: int = Field(
        default=1800, ge=60, description="seconds without a request before logout"
    )
    session_absolute_timeout: int = Field(
        default=43200, ge=60, description="seconds after login before logout"
    )
    account_recheck_interval: int = Field(
        default=60, ge=1, description="seconds between re-checks that a session's OS account is still usable"
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

    @model_validator(mode="after")
    def _timeouts(self) -> AuthSettings:
        if self.session_absolute_timeout < self.session_idle_timeout:
            raise ValueError("session_absolute_timeout must not be shorter than session_idle_timeout")
        return self
