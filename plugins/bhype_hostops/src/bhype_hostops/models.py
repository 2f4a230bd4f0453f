"""The plugin's tables: the rsync daemon's modules and users, check runs and their findings."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Text
from sqlalchemy.dialects import mysql
from sqlmodel import Field, SQLModel

from bhype_core.plugin_api import ID, TABLE_OPTIONS, JSONText, UTCDateTime, utcnow

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# A check's raw output may pass TEXT's 64 KiB on MariaDB (pkg audit of a big host).
LONG_TEXT = Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


class HostopsRsyncModule(SQLModel, table=True):
    """Table ``hostops_rsync_module``: one ``[module]`` of the rsync daemon (rsyncd.conf(5))."""

    __tablename__ = "hostops_rsync_module"  # type: ignore[assignment]
    __table_args__ = dict(TABLE_OPTIONS)

    id: int | None = Field(default=None, primary_key=True, sa_type=ID)
    name: str = Field(max_length=63, unique=True)
    path: str = Field(max_length=1024)
    comment: str = Field(default="", max_length=255)
    read_only: bool = True
    hosts_allow: list[str] = Field(default_factory=list, sa_type=JSONText)
    auth_users: list[str] = Field(default_factory=list, sa_type=JSONText)
    uid: str = Field(default="", max_length=32)
    gid: str = Field(default="", max_length=32)


class HostopsRsyncUser(SQLModel, table=True):
    """Table ``hostops_rsync_user``: a daemon login (``auth users``); the password is written to
    the 0600 secrets file by the worker and never returned by the API."""

    __tablename__ = "hostops_rsync_user"  # type: ignore[assignment]
    __table_args__ = dict(TABLE_OPTIONS)

    id: int | None = Field(default=None, primary_key=True, sa_type=ID)
    name: str = Field(max_length=32, unique=True)
    password: str = Field(sa_type=Text)


class HostopsFinding(SQLModel, table=True):
    """Table ``hostops_finding``: one vulnerability or pending patch, deduplicated by ``key``.

    ``digest`` changes when the finding's content does (new CVE, new version): that pops it
    again. ``notified_digest`` is what admins were last told; ``dismissed_until`` silences it
    until then; ``state`` becomes ``resolved`` when a check no longer reports it.
    """

    __tablename__ = "hostops_finding"  # type: ignore[assignment]
    __table_args__ = dict(TABLE_OPTIONS)

    id: int | None = Field(default=None, primary_key=True, sa_type=ID)
    key: str = Field(max_length=255, unique=True)
    kind: str = Field(max_length=16)  # vulnerability | patch
    source: str = Field(max_length=32)  # pkg-audit, base-audit, freebsd-update, pkg-upgrade, pkgbase
    package: str = Field(max_length=255)
    version: str = Field(default="", max_length=128)
    title: str = Field(default="", max_length=1024)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=JSONText)
    raw_output: str = Field(default="", sa_type=LONG_TEXT)
    digest: str = Field(max_length=64)
    notified_digest: str = Field(default="", max_length=64)
    state: str = Field(default="open", max_length=16)  # open | resolved
    first_seen: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_seen: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    dismissed_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    dismissed_by: str = Field(default="", max_length=64)


class HostopsCheckRun(SQLModel, table=True):
    """Table ``hostops_check_run``: one run of ``hostops.check``: each check's status, message and
    raw output (an error's output is kept here, a finding's with the finding)."""

    __tablename__ = "hostops_check_run"  # type: ignore[assignment]
    __table_args__ = dict(TABLE_OPTIONS)

    id: int | None = Field(default=None, primary_key=True, sa_type=ID)
    started: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished: datetime | None = Field(default=None, sa_type=UTCDateTime)
    checks: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSONText)
    opened: int = 0
    resolved: int = 0


HOSTOPS_MODELS: tuple[type[SQLModel], ...] = (HostopsRsyncModule, HostopsRsyncUser, HostopsFinding, HostopsCheckRun)
