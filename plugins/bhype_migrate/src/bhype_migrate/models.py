"""The plugin's tables: paired peer hosts and the journal of moves (what each move reached)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, Text
from sqlmodel import Field, SQLModel

from bhype_core.plugin_api import ID, TABLE_OPTIONS, JSONText, UTCDateTime, utcnow

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class MigratePeer(SQLModel, table=True):
    """Table ``migrate_peer``: another bHype host VMs move to. The admin token of the other
    host is NOT here: it is a 0600 file only the worker reads (:mod:`bhype_migrate.secrets`);
    ``token_hint`` is its first characters, to tell tokens apart."""

    __tablename__ = "migrate_peer"  # type: ignore[assignment]
    __table_args__ = dict(TABLE_OPTIONS)

    id: int | None = Field(default=None, primary_key=True, sa_type=ID)
    name: str = Field(max_length=63, unique=True)
    url: str = Field(max_length=255)
    ssh_host: str = Field(max_length=255)
    ssh_port: int = 22
    ssh_user: str = Field(default="root", max_length=63)
    host_key: str = Field(default="", sa_type=Text)  # pinned known_hosts lines
    token_hint: str = Field(default="", max_length=16)
    created: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    tested: datetime | None = Field(default=None, sa_type=UTCDateTime)
    test_ok: bool | None = None
    test_report: dict[str, Any] = Field(default_factory=dict, sa_type=JSONText)

    def public(self) -> dict[str, Any]:
        """What the API shows (never the token)."""
        return {
            "name": self.name, "url": self.url, "ssh_host": self.ssh_host, "ssh_port": self.ssh_port,
            "ssh_user": self.ssh_user, "host_key": self.host_key, "token_hint": self.token_hint,
            "created": self.created.isoformat() if self.created else None,
            "tested": self.tested.isoformat() if self.tested else None, "test_ok": self.test_ok,
            "test_report": self.test_report,
        }


class MigrateMove(SQLModel, table=True):
    """Table ``migrate_move``: one move of a VM from this host, with the step it reached, so a
    restarted worker (and ``bhype vm start``) knows a VM that moved or is being moved."""

    __tablename__ = "migrate_move"  # type: ignore[assignment]
    __table_args__ = dict(TABLE_OPTIONS)

    id: int | None = Field(default=None, primary_key=True, sa_type=ID)
    task_id: str = Field(max_length=64, index=True)
    vm_name: str = Field(max_length=63, index=True)
    vm_uuid: str = Field(max_length=36)
    peer: str = Field(max_length=63)
    mode: str = Field(default="cold", max_length=8)
    transport: str = Field(default="rsync", max_length=8)
    # planned, transferring, registered, started, done, kept (source kept, marked moved),
    # rolled_back, failed
    state: str = Field(default="planned", max_length=16)
    bytes_sent: int = Field(default=0, sa_type=BigInteger)
    offline_seconds: float | None = None
    detail: str = Field(default="", sa_type=Text)
    cleanup: str = Field(default="", sa_type=Text)  # JSON body of a peer clean-up still to do
    created: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    finished: datetime | None = Field(default=None, sa_type=UTCDateTime)


MIGRATE_MODELS: tuple[type[SQLModel], ...] = (MigratePeer, MigrateMove)
