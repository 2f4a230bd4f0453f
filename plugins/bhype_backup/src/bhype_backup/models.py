"""The plugin's tables: named backup targets and the backup points stored on them."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy import BigInteger, Index, Text
from sqlmodel import Field, SQLModel

from bhype_core.plugin_api import ID, TABLE_OPTIONS, UTCDateTime, utcnow

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

TARGET_KINDS = ("local", "daemon", "ssh", "zfs")
MODES = ("snapshot", "stop", "crash")
# verify_state / drill_state values (bak2 writes them): never run yet, running, passed, failed.
CHECK_STATES = ("none", "running", "ok", "failed")


class BackupTarget(SQLModel, table=True):
    """Table ``backup_target``: one admin-managed place backups go.

    No secret is stored here: a daemon password or an SSH private key lives in a 0600 file
    the worker alone reads (``has_secret`` says whether one was given). ``host_key`` is the
    SSH host key pinned at ``target add`` (public, in known_hosts format)."""

    __tablename__ = "backup_target"  # type: ignore[assignment]
    __table_args__ = dict(TABLE_OPTIONS)

    id: int | None = Field(default=None, primary_key=True, sa_type=ID)
    name: str = Field(max_length=63, unique=True)
    # "local" (a mounted directory), "daemon" (rsync://), "ssh" (rsync over SSH), "zfs" (zfs receive over SSH).
    kind: str = Field(max_length=16)
    # /path, rsync://user@host[:port]/module/path, user@host:path or user@host:pool/dataset (no password).
    destination: str = Field(max_length=1024)
    port: int | None = None
    windows: bool = False
    host_key: str = Field(default="", sa_type=Text)
    has_secret: bool = False
    description: str = Field(default="", max_length=255)
    # The last `target test` (run by the worker): when, whether it passed, what it said, free bytes.
    tested_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    test_ok: bool | None = None
    test_message: str = Field(default="", sa_type=Text)
    free_bytes: int | None = Field(default=None, sa_type=BigInteger)
    created: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class BackupPoint(SQLModel, table=True):
    """Table ``backup_point``: one backup of one VM on one target.

    A row exists from the moment a run starts (``complete`` false); it is listed as a backup
    only once its manifest was written last and atomically (``complete`` true, ``finished``
    and ``manifest_sha256`` set). ``path`` is the point's directory relative to the target."""

    __tablename__ = "backup_point"  # type: ignore[assignment]
    __table_args__ = (
        Index("ix_backup_point_vm_uuid_created", "vm_uuid", "created"),
        Index("ix_backup_point_target", "target"),
        dict(TABLE_OPTIONS),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=ID)
    vm_uuid: str = Field(max_length=36)
    vm_name: str = Field(max_length=63)
    target: str = Field(max_length=63)
    path: str = Field(max_length=1024)
    mode: str = Field(max_length=16)
    created: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # size: the point's logical size (every file at its apparent size, a disk's holes included:
    # what a restore writes); stored_bytes: what this point added on the target (files rsync
    # wrote anew, "Total transferred file size", plus the manifest: unchanged files are hard
    # links to, or local copies of, the previous point); bytes_sent: what crossed the network.
    size: int = Field(default=0, sa_type=BigInteger)
    stored_bytes: int = Field(default=0, sa_type=BigInteger)
    bytes_sent: int = Field(default=0, sa_type=BigInteger)
    manifest_sha256: str = Field(default="", max_length=64)
    complete: bool = False
    job_id: int | None = Field(default=None, sa_type=ID)
    task_id: int | None = Field(default=None, sa_type=ID)
    # Warnings worth showing beside the point (crash-consistent on directory storage, full send ...).
    note: str = Field(default="", sa_type=Text)
    verify_state: str = Field(default="none", max_length=16)
    verified_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    drill_state: str = Field(default="none", max_length=16)
    drill_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    drill_excerpt: str = Field(default="", sa_type=Text)


BACKUP_MODELS: tuple[type[SQLModel], ...] = (BackupTarget, BackupPoint)
