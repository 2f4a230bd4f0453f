"""Table ``backup_job``: what to back up, when, where, how, and how long to keep it."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Text
from sqlmodel import Field, SQLModel

from bhype_core.plugin_api import ID, TABLE_OPTIONS, JSONText, UTCDateTime, utcnow

MIGRATIONS = Path(__file__).resolve().parent / "jobs_migrations"
MODES = ("snapshot", "stop", "crash")


class BackupJob(SQLModel, table=True):
    """Table ``backup_job`` (migration branch ``backup_jobs``).

    Selection: a VM is in the job if its name is in ``vms``, or its owner in ``owners``, or
    it carries one of ``tags`` (an empty selection selects nothing). ``retention`` is the
    core's policy text (``last=3 daily=7``); ``schedule`` a crontab(5) line in UTC.
    ``last_slot`` is the schedule slot the newest run was submitted for (missed runs run once).
    ``drill_schedule`` (empty: no drills) restores the newest point of each selected VM as a
    temporary VM and waits for ``drill_check`` (``{"kind": "serial", "text": …}``: that text on
    its serial console; ``{"kind": "vnc"}``: its VNC screen changing).
    """

    __tablename__ = "backup_job"  # type: ignore[assignment]
    __table_args__ = dict(TABLE_OPTIONS)

    id: int | None = Field(default=None, primary_key=True, sa_type=ID)
    name: str = Field(max_length=63, unique=True)
    owner: str = Field(max_length=64)
    target: str = Field(max_length=63)
    mode: str = Field(default="snapshot", max_length=16)
    schedule: str = Field(default="@daily", max_length=120)
    vms: list[str] = Field(default_factory=list, sa_type=JSONText)
    owners: list[str] = Field(default_factory=list, sa_type=JSONText)
    tags: list[str] = Field(default_factory=list, sa_type=JSONText)
    retention: str = Field(default="last=7", max_length=200)
    window_minutes: int = Field(default=1440)
    enabled: bool = True
    drill_schedule: str = Field(default="", max_length=120)
    drill_check: dict[str, Any] = Field(default_factory=dict, sa_type=JSONText)
    drill_timeout: int = Field(default=600)
    created: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_slot: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_drill_slot: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_task: str | None = Field(default=None, max_length=64)
    last_started: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_finished: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_state: str = Field(default="", max_length=16)
    last_error: str = Field(default="", sa_type=Text)
    last_success: datetime | None = Field(default=None, sa_type=UTCDateTime)
    overdue_since: datetime | None = Field(default=None, sa_type=UTCDateTime)


JOB_MODELS: tuple[type[SQLModel], ...] = (BackupJob,)
