"""Real local users and groups for PAM tests (useradd/groupadd + chpasswd), removed afterwards."""

from __future__ import annotations

import grp
import os
import pwd
import secrets
import shutil
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bhype_core.auth.pam import service_file_path, service_file_text
from bhype_core.errors import CommandError
from bhype_core.host.runner import LocalRunner, Result, Runner
from bhype_core.testing import parts

PREFIX = "bht_"
# shadow-utils tools fail instead of waiting when another process holds /etc/passwd's lock
# (other test sessions on this machine create users too): retry those, nothing else.
LOCK_RETRIES = 40


@dataclass(frozen=True)
class LocalGroup:
    """A group created for a test."""

    name: str
    gid: int


@dataclass(frozen=True)
class LocalUser:
    """A user created for a test, with the password set through chpasswd(8)."""

    name: str
    password: str
    uid: int
    gid: int
    primary_group: str
    groups: tuple[str, ...]  # supplementary groups


def unique_name(prefix: str = PREFIX) -> str:
    """A fresh name that useradd(8)'s default NAME_REGEX accepts (lower case, ≤ 32 chars)."""
    return f"{prefix}{secrets.token_hex(5)}"


class LocalUsers:
    """Creates users, groups and a PAM service for one test, and removes exactly those.

    Usable as the ``local_user`` fixture or as a context manager (benchmarks). Linux only
    (shadow-utils); needs root.
    """

    def __init__(self, runner: Runner | None = None) -> None:
        self.runner = runner or LocalRunner(default_timeout=30.0)
        self._users: list[str] = []
        self._groups: list[str] = []
        self._pam_files: list[Path] = []

    def _run(self, argv: list[str], input: str | None = None) -> Result:
        for attempt in range(LOCK_RETRIES):
            try:
                return self.runner.run(argv, input=input)
            except CommandError as exc:
                if "lock" not in exc.stderr.lower() or attempt == LOCK_RETRIES - 1:
                    raise
                time.sleep(0.05 + secrets.randbelow(100) / 1000)
        raise AssertionError("unreachable")

    def group(self, name: str | None = None) -> LocalGroup:
        """Create a group (unique ``bht_…`` name unless given)."""
        name = name or unique_name()
        self._run(["groupadd", name])
        self._groups.append(name)
        return LocalGroup(name, grp.getgrnam(name).gr_gid)

    def __call__(
        self,
        *,
        groups: Iterable[str | LocalGroup] = (),
        primary_group: str | LocalGroup | None = None,
        password: str | None = None,
    ) -> LocalUser:
        """Create a user with a password, a primary group (a fresh one unless given) and the
        supplementary ``groups``; no home directory, shell nologin."""
        name = unique_name()
        primary = primary_group or self.group()
        primary_name = primary.name if isinstance(primary, LocalGroup) else primary
        extra = [g.name if isinstance(g, LocalGroup) else g for g in groups]
        password = password or secrets.token_urlsafe(12)
        argv = ["useradd", "-M", "-N", "-g", primary_name, "-s", "/usr/sbin/nologin", "-c", "bHype test user"]
        if extra:
            argv += ["-G", ",".join(extra)]
        self._run([*argv, name])
        self._users.append(name)
        self._run(["chpasswd"], input=f"{name}:{password}\n")
        entry = pwd.getpwnam(name)
        return LocalUser(name, password, entry.pw_uid, entry.pw_gid, primary_name, tuple(extra))

    user = __call__

    def lock(self, user: LocalUser) -> None:
        """Lock the password (usermod(8) ``-L`` puts ``!`` before the hash)."""
        self._run(["usermod", "-L", user.name])

    def expire(self, user: LocalUser) -> None:
        """Expire the account (expiry day 1 = 1970-01-02, usermod(8) ``-e``)."""
        self._run(["usermod", "-e", "1970-01-02", user.name])

    def add_to_group(self, user: LocalUser, group: str | LocalGroup) -> None:
        """Add a supplementary group (usermod(8) ``-a -G``)."""
        name = group.name if isinstance(group, LocalGroup) else group
        self._run(["usermod", "-a", "-G", name, user.name])

    def delete(self, user: LocalUser | str) -> None:
        """Delete a user now (as an administrator would while the user is logged in)."""
        name = user.name if isinstance(user, LocalUser) else user
        self._run(["userdel", name])
        if name in self._users:
            self._users.remove(name)

    def pam_service(self, name: str | None = None) -> str:
        """Install bHype's shipped PAM service file and return the service name.

        Default: under a unique name, so parallel test sessions never remove a file another
        session is using. With ``name`` (e.g. ``"bhype"``), the file is written only if absent
        and then removed afterwards; an existing file is used and left alone.
        """
        name = name or unique_name("bht-")
        path = service_file_path(name, platform="linux")
        try:
            with open(path, "x", encoding="utf-8") as handle:  # "x": never overwrite
                handle.write(service_file_text("linux"))
        except FileExistsError:
            return name
        self._pam_files.append(path)
        return name

    def cleanup(self) -> None:
        """Remove every user, group and PAM file this instance created; raise if any removal
        failed (after trying them all)."""
        problems: list[str] = []
        for argv, names in ((["userdel"], self._users), (["groupdel"], self._groups)):
            for name in reversed(names):
                try:
                    self._run([*argv, name])
                except CommandError as exc:
                    problems.append(str(exc))
            names.clear()
        for path in self._pam_files:
            path.unlink(missing_ok=True)
        self._pam_files.clear()
        if problems:
            raise AssertionError("local_user cleanup failed: " + "; ".join(problems))

    def __enter__(self) -> LocalUsers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


def require_user_tools() -> None:
    """Fail when this machine cannot create real users for the test, unless the run says
    ``--without users``."""
    missing = [tool for tool in ("useradd", "groupadd", "chpasswd", "usermod") if shutil.which(tool) is None]
    reason = ""
    if os.geteuid() != 0:
        reason = "creating local users needs root"
    elif missing:
        reason = f"missing shadow-utils tools: {', '.join(missing)} (Debian package passwd)"
    if reason:
        parts.missing("users", reason)


@pytest.fixture
def local_user() -> Iterator[LocalUsers]:
    """Factory of real local users: ``local_user(groups=[...])`` returns a :class:`LocalUser`;
    ``local_user.group()``, ``.lock()``, ``.expire()``, ``.delete()``, ``.pam_service()``.
    Everything created is removed after the test."""
    require_user_tools()
    users = LocalUsers()
    try:
        yield users
    finally:
        users.cleanup()
