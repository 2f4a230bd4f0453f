"""The ``core_host`` table: one row per worker host of the group, written by that host's worker."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlmodel import Field, SQLModel

from bhype_core.db.models import utcnow
from bhype_core.db.types import TABLE_OPTIONS, JSONText, UTCDateTime

HOST_NAME_LENGTH = 63


class Host(SQLModel, table=True):
    """Table ``core_host``: identity, capacity and versions as the host last registered them.

    ``last_seen`` is the database heartbeat (the embedded default); with Redis configured the
    heartbeat lives in Redis and ``last_seen`` only changes at registration.
    """

    __tablename__ = "core_host"  # type: ignore[assignment]
    __table_args__ = dict(TABLE_OPTIONS)

    name: str = Field(primary_key=True, max_length=HOST_NAME_LENGTH)
    address: str = Field(default="", max_length=255)
    platform: str = Field(default="", max_length=32)
    hypervisor: str = Field(default="", max_length=32)
    # {"cpus", "memory_total", "memory_free", "datastores": {name: {backend, free, total}},
    #  "switches": [...], "templates": [...]}
    capacity: dict[str, Any] = Field(default_factory=dict, sa_type=JSONText)
    # {"bhype-core": "x.y.z", "<plugin>": "version"} and the task kinds this host's worker knows.
    versions: dict[str, Any] = Field(default_factory=dict, sa_type=JSONText)
    task_kinds: list[str] = Field(default_factory=list, sa_type=JSONText)
    registered: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_seen: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


HOST_MODELS: tuple[type[SQLModel], ...] = (Host,)
