"""Parsers for the outputs host init reads, each in its documented format.

- ``sysrc -n VAR`` (sysrc(8)): the value alone on one line; an unset variable exits 1 with
  ``sysrc: unknown variable 'VAR'`` on stderr.
- ``pw groupshow NAME`` (pw(8)) and ``getent group NAME`` (getent(1)): one group(5) line,
  ``name:password:gid:member,member``.
- ``pw usershow NAME`` (pw(8)): one master.passwd(5) line, ``name:password:uid:gid:class:change:
  expire:gecos:home:shell``; ``getent passwd NAME`` one passwd(5) line, ``name:password:uid:gid:
  gecos:home:shell``.
- ``stat -f '%Su %Sg %Mp%Lp' PATH`` (FreeBSD stat(1)) and ``stat -c '%U %G %a' PATH`` (GNU
  stat(1)): ``owner group mode`` with the mode in octal, special bits included.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class GroupEntry:
    """One group(5) entry."""

    name: str
    gid: int
    members: tuple[str, ...]


@dataclass(frozen=True)
class UserEntry:
    """One account: name, uid, primary gid, home and shell."""

    name: str
    uid: int
    gid: int
    home: str
    shell: str


@dataclass(frozen=True)
class PathState:
    """Owner, group and mode (special bits included) of a path."""

    owner: str
    group: str
    mode: int


def parse_sysrc_value(stdout: str, returncode: int) -> str | None:
    """The value ``sysrc -n`` printed, or ``None`` for an unset variable (exit 1)."""
    if returncode != 0:
        return None
    return stdout.rstrip("\n")


def parse_words(value: str | None) -> list[str]:
    """A space-separated rc.conf list (``kld_list="vmm nmdm"``) as words."""
    return value.split() if value else []


def parse_group_line(stdout: str) -> GroupEntry | None:
    """The first group(5) line of ``stdout``, or ``None`` when there is none."""
    for line in stdout.splitlines():
        fields = line.strip().split(":")
        if len(fields) == 4 and fields[2].isdigit():
            members = tuple(member for member in fields[3].split(",") if member)
            return GroupEntry(fields[0], int(fields[2]), members)
    return None


def parse_user_line(stdout: str) -> UserEntry | None:
    """The first passwd(5) (7 fields) or master.passwd(5) (10 fields) line, or ``None``."""
    for line in stdout.splitlines():
        fields = line.strip().split(":")
        if len(fields) not in (7, 10) or not (fields[2].isdigit() and fields[3].isdigit()):
            continue
        home, shell = fields[-2], fields[-1]
        return UserEntry(fields[0], int(fields[2]), int(fields[3]), home, shell)
    return None


def parse_stat_line(stdout: str) -> PathState | None:
    """``owner group mode`` from stat(1), or ``None`` when the output is not that shape."""
    parts = stdout.split()
    if len(parts) != 3:
        return None
    try:
        mode = int(parts[2], 8)
    except ValueError:
        return None
    return PathState(parts[0], parts[1], mode)
