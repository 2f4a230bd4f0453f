"""Who a local user is to bHype: uid, groups (through NSS) and the role those groups grant."""

from __future__ import annotations

import grp
import os
import pwd
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Protocol

from bhype_core.auth import pam
from bhype_core.errors import Forbidden

Role = Literal["admin", "operator"]

SHADOW_PATH = Path("/etc/shadow")
# pw(8) "USER LOCKING": `pw lock` prepends this to the hash in master.passwd.
FREEBSD_LOCKED_PREFIX = "*LOCKED*"


class RoleConfig(Protocol):
    """What :func:`role_for` needs; :class:`~bhype_core.auth.settings.AuthSettings` fits."""

    admin_groups: list[str]
    operator_groups: list[str]


@dataclass(frozen=True)
class Identity:
    """A logged-in local user as bHype sees them. The OS is the source of truth; nothing is stored."""

    username: str
    uid: int
    groups: tuple[str, ...] = field(default=())
    role: Role = "operator"

    @property
    def is_admin(self) -> bool:
        """Admins see and act on every user's VMs and tasks, and on host settings."""
        return self.role == "admin"

    def to_dict(self) -> dict:
        """JSON form (privileged channel, session store)."""
        return {"username": self.username, "uid": self.uid, "groups": list(self.groups), "role": self.role}

    @classmethod
    def from_dict(cls, data: dict) -> Identity:
        """Inverse of :meth:`to_dict`; raises ``ValueError`` naming the bad field."""
        try:
            username, uid, groups, role = data["username"], data["uid"], data["groups"], data["role"]
        except (KeyError, TypeError) as exc:
            raise ValueError(f"identity: missing field {exc}") from None
        if not isinstance(username, str) or not username:
            raise ValueError("identity.username: must be a non-empty string")
        if not isinstance(uid, int) or isinstance(uid, bool) or uid < 0:
            raise ValueError("identity.uid: must be a non-negative integer")
        if not isinstance(groups, list) or not all(isinstance(g, str) for g in groups):
            raise ValueError("identity.groups: must be a list of strings")
        if role not in ("admin", "operator"):
            raise ValueError("identity.role: must be 'admin' or 'operator'")
        return cls(username, uid, tuple(groups), role)


class NotInBhypeGroup(Forbidden):
    """The password was right but the account is in no group that grants a bHype role."""

    code = "no_bhype_role"


def groups_of(username: str) -> tuple[str, ...]:
    """Names of every group ``username`` belongs to: primary first, then supplementary.

    Uses ``getgrouplist(3)`` through NSS with the primary gid from the passwd entry, because
    scanning ``/etc/group`` (``grp.getgrall()``) misses the primary group, which is recorded only
    in passwd. A gid without a group entry is kept as its number so nothing is silently dropped.
    Raises ``KeyError`` when the user does not exist.
    """
    entry = pwd.getpwnam(username)
    names: list[str] = []
    for gid in [entry.pw_gid, *os.getgrouplist(username, entry.pw_gid)]:
        try:
            name = grp.getgrgid(gid).gr_name
        except KeyError:
            name = str(gid)
        if name not in names:
            names.append(name)
    return tuple(names)


def role_for(groups: Iterable[str], config: RoleConfig) -> Role:
    """The role a set of group names grants: admin wins over operator.

    Raises :class:`NotInBhypeGroup` (403) with a message that names the groups to join, since
    the caller has already proven the password and may know why they are refused.
    """
    groups = set(groups)
    if groups & set(config.admin_groups):
        return "admin"
    if groups & set(config.operator_groups):
        return "operator"
    wanted = ", ".join([*config.admin_groups, *config.operator_groups]) or "(none configured)"
    raise NotInBhypeGroup(
        f"this account is not a member of any bHype group ({wanted}); ask an administrator to add it to one"
    )


def identify(username: str, config: RoleConfig) -> Identity:
    """Build the :class:`Identity` of an existing user (after a successful password check).

    Group membership is read afresh here, so a group change takes effect at the next login.
    """
    entry = pwd.getpwnam(username)
    groups = groups_of(username)
    return Identity(username=entry.pw_name, uid=entry.pw_uid, groups=groups, role=role_for(groups, config))


@dataclass(frozen=True)
class AccountStatus:
    """Result of a periodic re-check: may this account keep its sessions? ``reason`` is for logs."""

    usable: bool
    reason: str = ""

    def to_dict(self) -> dict:
        """JSON form (privileged channel)."""
        return {"usable": self.usable, "reason": self.reason}


@dataclass(frozen=True)
class ShadowEntry:
    """The fields of one shadow(5) line that decide whether a password login may happen."""

    name: str
    password: str
    expire_day: int | None  # days since 1970-01-01; None = never


def parse_shadow_line(line: str) -> ShadowEntry:
    """Parse one line of Linux ``/etc/shadow`` (shadow(5): nine ``:``-separated fields).

    Field 2 is the hash, field 8 the account expiration date in days since the epoch (empty =
    never). Raises ``ValueError`` for a malformed line.
    """
    fields = line.rstrip("\n").split(":")
    if len(fields) != 9 or not fields[0]:
        raise ValueError(f"shadow line has {len(fields)} fields, expected 9")
    expire = fields[7].strip()
    try:
        expire_day = int(expire) if expire else None
    except ValueError:
        raise ValueError(f"shadow: expiration date {expire!r} is not a number") from None
    return ShadowEntry(fields[0], fields[1], expire_day)


def shadow_entry(username: str, path: Path = SHADOW_PATH) -> ShadowEntry | None:
    """The shadow(5) entry of ``username`` read from the file (root only), or None if absent.

    Read directly instead of through the ``spwd`` module (deprecated in 3.11, gone in 3.13);
    accounts served by other NSS sources have no line here and rely on PAM alone.
    """
    with open(path, encoding="utf-8", errors="replace") as handle:
        for line in handle:
            if line.startswith(username + ":"):
                return parse_shadow_line(line)
    return None


def shadow_refusal(entry: ShadowEntry, today: int) -> str:
    """Why a shadow(5) entry cannot log in with a password, or ``""`` if it can.

    A hash starting with ``!`` is locked (usermod(8) ``-L``, passwd(1) ``-l``); ``*`` or any other
    non-crypt(3) value means no password login at all (shadow(5)). Expiry follows shadow-utils'
    ``isexpired``: expired once ``today >= expire_day`` for a positive ``expire_day``.
    """
    if entry.password.startswith("!"):
        return "locked"
    if entry.password.startswith("*") or not entry.password:
        return "no password login"
    if entry.expire_day is not None and entry.expire_day > 0 and today >= entry.expire_day:
        return "expired"
    return ""


def account_usable(
    username: str,
    *,
    pam_service: str = "bhype",
    platform: str | None = None,
    shadow_path: Path = SHADOW_PATH,
    now: float | None = None,
) -> AccountStatus:
    """Re-check that a logged-in user may keep going: exists, not locked, not expired.

    Run by the privileged daemon (root: shadow and master.passwd are root-only):

    1. the passwd entry still exists (NSS ``getpwnam``);
    2. not locked: Linux reads the hash in shadow(5) (``!``/``*``, expiry); FreeBSD's
       ``getpwnam`` as root returns the master.passwd hash, locked by ``pw lock`` with the
       ``*LOCKED*`` prefix (pw(8) "USER LOCKING", passwd(5));
    3. PAM ``pam_acct_mgmt`` for the service agrees (account expiry on both systems, login
       class restrictions on FreeBSD, any extra account modules an administrator configured).
    """
    platform = platform or sys.platform
    try:
        entry = pwd.getpwnam(username)
    except (KeyError, ValueError):
        return AccountStatus(False, "no such user")
    if platform.startswith("freebsd"):
        if entry.pw_passwd.startswith(FREEBSD_LOCKED_PREFIX):
            return AccountStatus(False, "locked")
    else:
        try:
            shadow = shadow_entry(username, shadow_path)
        except OSError as exc:
            return AccountStatus(False, f"cannot read {shadow_path}: {exc.strerror}")
        if shadow is not None:
            today = int((time.time() if now is None else now) // 86400)
            refusal = shadow_refusal(shadow, today)
            if refusal:
                return AccountStatus(False, refusal)
    ok, reason = pam.check_account(username, pam_service)
    return AccountStatus(ok, reason)
