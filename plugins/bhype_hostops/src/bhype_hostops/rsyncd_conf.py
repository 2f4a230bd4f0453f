"""The rsync daemon's configuration: validated modules and users, rendered as rsyncd.conf(5).

Format (rsyncd.conf(5), RsyncProject/rsync rsyncd.conf.5.md): ``name = value`` lines, global
parameters before the first ``[module]``; a line ending in ``\\`` continues on the next, ``#``
or ``;`` at the start of a line is a comment. So values must be one line, not end in ``\\``.
The secrets file holds ``user:password`` lines and, with ``strict modes`` (the default), must
not be readable by others (bHype writes it 0600).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator

MODULE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,62}")
USER_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}")
ACCOUNT = re.compile(r"[A-Za-z_][A-Za-z0-9_-]{0,31}")  # uid/gid: a user or group name (or a number)
HOST_PATTERN = re.compile(r"[A-Za-z0-9*?][A-Za-z0-9*?.-]{0,252}")  # rsyncd.conf(5) "hosts allow" wildcards
RESERVED = ("global",)  # "[global]" starts the global section again (rsyncd.conf(5))


def _one_line(value: str, field: str) -> str:
    if any(char in value for char in "\n\r\0") or value.endswith("\\"):
        raise ValueError(f"{field} must be one line and not end in a backslash (rsyncd.conf(5))")
    return value


def check_host(value: str) -> str:
    """An address, a CIDR network (``10.0.0.0/24``) or a host-name pattern with ``*``/``?``."""
    try:
        return str(ipaddress.ip_network(value, strict=False)) if "/" in value else str(ipaddress.ip_address(value))
    except ValueError:
        pass
    if not HOST_PATTERN.fullmatch(value):
        raise ValueError(f"{value!r} is not an address, a network (a.b.c.d/n) or a host name pattern")
    return value


class RsyncModule(BaseModel):
    """One module of the rsync daemon: where it writes or reads, and who may."""

    name: str = Field(description="module name: rsync://host/NAME")
    path: str = Field(description="absolute directory the module serves")
    comment: str = Field("", max_length=255)
    read_only: bool = Field(True, description="refuse uploads (rsyncd.conf(5) 'read only')")
    hosts_allow: list[str] = Field(default_factory=list, description="addresses/networks allowed; empty: any")
    auth_users: list[str] = Field(default_factory=list, description="users who must log in; empty: anonymous")
    uid: str = Field("", description="user the daemon acts as in this module (empty: rsync's default)")
    gid: str = Field("", description="group the daemon acts as in this module")

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not MODULE_NAME.fullmatch(value) or value.lower() in RESERVED:
            raise ValueError("letters, digits, '_', '-', '.' (at most 63), not 'global'")
        return value

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        _one_line(value, "path")
        if not value.startswith("/") or "/../" in value + "/" or value.rstrip("/") == "":
            raise ValueError("must be an absolute path below / without '..'")
        return value

    @field_validator("comment")
    @classmethod
    def _comment(cls, value: str) -> str:
        return _one_line(value, "comment")

    @field_validator("hosts_allow")
    @classmethod
    def _hosts(cls, value: list[str]) -> list[str]:
        return [check_host(host) for host in value]

    @field_validator("auth_users")
    @classmethod
    def _users(cls, value: list[str]) -> list[str]:
        for user in value:
            if not USER_NAME.fullmatch(user):
                raise ValueError(f"{user!r} is not a user name")
        return value

    @field_validator("uid", "gid")
    @classmethod
    def _account(cls, value: str) -> str:
        if value and not (ACCOUNT.fullmatch(value) or value.isdigit()):
            raise ValueError(f"{value!r} is not a user/group name or number")
        return value


class RsyncUser(BaseModel):
    """A daemon login; ``password`` None keeps the stored one."""

    name: str
    password: str | None = Field(None, min_length=8, max_length=256, repr=False)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not USER_NAME.fullmatch(value):
            raise ValueError("letters, digits, '_', '-', '.' (at most 32)")
        return value

    @field_validator("password")
    @classmethod
    def _password(cls, value: str | None) -> str | None:
        return None if value is None else _one_line(value, "password")


class RsyncdConfig(BaseModel):
    """The whole daemon configuration as the API takes it."""

    modules: list[RsyncModule] = Field(default_factory=list)
    users: list[RsyncUser] = Field(default_factory=list)

    @model_validator(mode="after")
    def _consistent(self) -> RsyncdConfig:
        names = [module.name for module in self.modules]
        if len(set(names)) != len(names):
            raise ValueError("module names must be unique")
        users = [user.name for user in self.users]
        if len(set(users)) != len(users):
            raise ValueError("user names must be unique")
        for module in self.modules:
            unknown = sorted(set(module.auth_users) - set(users))
            if unknown:
                raise ValueError(f"module {module.name}: auth_users {', '.join(unknown)} are not defined users")
        return self


def render_config(modules: list[RsyncModule], *, pid_file: str, port: int, address: str, secrets_file: str) -> str:
    """The rsyncd.conf(5) text for ``modules``.

    ``pid file`` stays as the FreeBSD rc script expects (its status/stop read it, freebsd-ports
    net/rsync/files/rsyncd.in); a module with ``hosts allow`` also gets ``hosts deny = *`` so
    only the listed hosts get in; one with ``auth users`` points at the secrets file with
    ``strict modes`` on.
    """
    lines = ["# Written by bHype (hostops): changes made here are replaced on the next apply.",
             f"pid file = {_one_line(pid_file, 'pid file')}", f"port = {int(port)}"]
    if address:
        lines.append(f"address = {check_host(address)}")
    for module in modules:
        lines += ["", f"[{module.name}]", f"\tpath = {module.path}"]
        if module.comment:
            lines.append(f"\tcomment = {module.comment}")
        lines.append(f"\tread only = {'yes' if module.read_only else 'no'}")
        if module.hosts_allow:
            lines += [f"\thosts allow = {' '.join(module.hosts_allow)}", "\thosts deny = *"]
        if module.auth_users:
            lines += [f"\tauth users = {', '.join(module.auth_users)}", f"\tsecrets file = {secrets_file}",
                      "\tstrict modes = yes"]
        for key, value in (("uid", module.uid), ("gid", module.gid)):
            if value:
                lines.append(f"\t{key} = {value}")
    return "\n".join(lines) + "\n"


def render_secrets(users: dict[str, str]) -> str:
    """The secrets file: ``user:password`` lines (rsyncd.conf(5) "secrets file")."""
    return "".join(f"{name}:{_one_line(password, 'password')}\n" for name, password in sorted(users.items()))


def public_module(row: Any) -> dict[str, Any]:
    """A module row as the API shows it."""
    return RsyncModule.model_validate(row, from_attributes=True).model_dump()
