"""Groups and the service account: pw(8) on FreeBSD, groupadd(8)/useradd(8)/usermod(8) on Linux.

Read: ``pw groupshow`` / ``pw usershow`` (FreeBSD), ``getent group`` / ``getent passwd`` (Linux,
through NSS). The account is a system account without a password or a home: the API runs as it
(daemon(8) ``-u``), nobody logs in as it. Primary group: its own (``bhype-api``); supplementary:
the operators' group, which owns the auth daemon's socket (0660).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bhype_core.hostinit.layout import Layout
from bhype_core.hostinit.parsers import GroupEntry, parse_group_line, parse_user_line
from bhype_core.hostinit.plan import Change, Step

Ask = Callable[[list[str]], Any]  # argv → an object with .returncode and .stdout (a Probe)
NOLOGIN = {"freebsd": "/usr/sbin/nologin", "linux": "/usr/sbin/nologin"}
GECOS = "bHype API service"


def group_query(platform: str, name: str) -> list[str]:
    """pw(8) ``groupshow`` or getent(1) ``group``: one group(5) line, non-zero when unknown."""
    return ["pw", "groupshow", name] if platform == "freebsd" else ["getent", "group", name]


def user_query(platform: str, name: str) -> list[str]:
    """pw(8) ``usershow`` or getent(1) ``passwd``."""
    return ["pw", "usershow", name] if platform == "freebsd" else ["getent", "passwd", name]


def group_add(platform: str, name: str) -> list[str]:
    """Create a group (pw(8) ``groupadd``, groupadd(8) ``--system``)."""
    return ["pw", "groupadd", name] if platform == "freebsd" else ["groupadd", "--system", name]


def user_add(platform: str, layout: Layout) -> list[str]:
    """Create the service account: own primary group, in the operators' group, no home, no
    password (pw(8) without ``-w``/``-h`` leaves it locked; useradd(8) sets ``!``), nologin."""
    user, shell = layout.service_user, NOLOGIN[platform]
    if platform == "freebsd":
        return ["pw", "useradd", user, "-g", layout.service_group, "-G", layout.operators,
                "-d", "/nonexistent", "-s", shell, "-c", GECOS]
    return ["useradd", "--system", "-g", layout.service_group, "-G", layout.operators, "-M",
            "-d", "/nonexistent", "-s", shell, "-c", GECOS, user]


def add_member(platform: str, group: str, user: str) -> list[str]:
    """Add ``user`` to ``group`` (pw(8) ``groupmod -m``, usermod(8) ``-a -G``)."""
    if platform == "freebsd":
        return ["pw", "groupmod", group, "-m", user]
    return ["usermod", "-a", "-G", group, user]


def set_primary(platform: str, user: str, group: str) -> list[str]:
    """Change the primary group (pw(8) ``usermod -g``, usermod(8) ``-g``)."""
    if platform == "freebsd":
        return ["pw", "usermod", user, "-g", group]
    return ["usermod", "-g", group, user]


def manpage(platform: str, tool: str = "") -> str:
    """The manual page of a change: pw(8) on FreeBSD, ``tool``'s own page on Linux."""
    if platform == "freebsd":
        return "pw(8)"
    return f"{tool}(8)" if tool else "groupadd(8), useradd(8), usermod(8)"


def plan_accounts(platform: str, layout: Layout, ask: Ask) -> Step:
    """Groups (service group, operators, admins) and the service account."""
    changes: list[Change] = []
    notes: list[str] = []
    found: dict[str, GroupEntry | None] = {}
    for name in layout.groups:
        answer = ask(group_query(platform, name))
        found[name] = parse_group_line(answer.stdout) if answer.returncode == 0 else None
        if found[name] is None:
            changes.append(Change(f"create group {name}", (tuple(group_add(platform, name)),),
                                  manpage(platform, "groupadd")))
        else:
            notes.append(f"group {name} exists (gid {found[name].gid})")
    user = layout.service_user
    answer = ask(user_query(platform, user))
    entry = parse_user_line(answer.stdout) if answer.returncode == 0 else None
    if entry is None:
        changes.append(Change(f"create service user {user}", (tuple(user_add(platform, layout)),),
                              manpage(platform, "useradd")))
        return Step("groups and service user", manpage(platform), tuple(changes), tuple(notes))
    notes.append(f"service user {user} exists (uid {entry.uid})")
    service = found[layout.service_group]
    if service is None or entry.gid != service.gid:
        changes.append(Change(f"make {layout.service_group} the primary group of {user}",
                              (tuple(set_primary(platform, user, layout.service_group)),),
                              manpage(platform, "usermod")))
    operators = found[layout.operators]
    if operators is None or user not in operators.members:
        changes.append(Change(f"add {user} to group {layout.operators} (the auth socket's group)",
                              (tuple(add_member(platform, layout.operators, user)),), manpage(platform, "usermod")))
    return Step("groups and service user", manpage(platform), tuple(changes), tuple(notes))
