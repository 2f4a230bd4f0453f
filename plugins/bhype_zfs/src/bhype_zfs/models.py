"""The plugin's tables: snapshot schedules, their per-period state, and the last pool health seen."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from sqlalchemy import BigInteger, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from bhype_core.plugin_api import ID, INT64_MAX, INT64_MIN, TABLE_OPTIONS, UTCDateTime, utcnow

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


class ZfsScheduleBase(SQLModel):
    """A snapshot schedule on a dataset tree (a VM's dataset, or any other), sanoid-style counts."""

    name: str = Field(max_length=63, unique=True)
    dataset: str = Field(default="", max_length=255)
    vm: str | None = Field(default=None, max_length=63)
    recursive: bool = True
    frequently: int = Field(default=0, ge=INT64_MIN, le=INT64_MAX)
    hourly: int = Field(default=0, ge=INT64_MIN, le=INT64_MAX)
    daily: int = Field(default=0, ge=INT64_MIN, le=INT64_MAX)
    weekly: int = Field(default=0, ge=INT64_MIN, le=INT64_MAX)
    monthly: int = Field(default=0, ge=INT64_MIN, le=INT64_MAX)
    yearly: int = Field(default=0, ge=INT64_MIN, le=INT64_MAX)
    # 64-bit bounds only: the retention rules check the real ranges and name the field.
    frequent_minutes: int = Field(default=15, ge=INT64_MIN, le=INT64_MAX)
    enabled: bool = True


class ZfsSchedule(ZfsScheduleBase, table=True):
    """Table ``zfs_schedule``."""

    __tablename__ = "zfs_schedule"  # type: ignore[assignment]
    __table_args__ = dict(TABLE_OPTIONS)

    id: int | None = Field(default=None, primary_key=True, sa_type=ID)
    created: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ZfsScheduleState(SQLModel, table=True):
    """Table ``zfs_schedule_state``: when each period of a schedule last took its snapshot
    (so restarts neither repeat nor multiply missed runs) and the last run's error."""

    __tablename__ = "zfs_schedule_state"  # type: ignore[assignment]
    __table_args__ = (UniqueConstraint("schedule_id", "period"), dict(TABLE_OPTIONS))

    id: int | None = Field(default=None, primary_key=True, sa_type=ID)
    schedule_id: int = Field(foreign_key="zfs_schedule.id", sa_type=ID)
    period: str = Field(max_length=16)
    last_taken: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_error: str = Field(default="", sa_type=Text)
    updated: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class ZfsHealthState(SQLModel, table=True):
    """Table ``zfs_health_state``: each pool's health and space at the last check (the API
    shows it without running host commands), and the level last reported, so an event is
    raised when it changes, not on every check."""

    __tablename__ = "zfs_health_state"  # type: ignore[assignment]
    __table_args__ = dict(TABLE_OPTIONS)

    id: int | None = Field(default=None, primary_key=True, sa_type=ID)
    pool: str = Field(max_length=255, unique=True)
    health: str = Field(max_length=16)
    capacity_level: str = Field(max_length=16)
    capacity: int = 0
    size: int = Field(default=0, sa_type=BigInteger)
    allocated: int = Field(default=0, sa_type=BigInteger)
    free: int = Field(default=0, sa_type=BigInteger)
    updated: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


ZFS_MODELS: tuple[type[SQLModel], ...] = (ZfsSchedule, ZfsScheduleState, ZfsHealthState)
