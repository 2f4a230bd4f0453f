"""The plugin's tables: notifications kept per user for the web UI, and how far each user has read."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Index, Text
from sqlmodel import Field, SQLModel

from bhype_core.plugin_api import ID, TABLE_OPTIONS, USER_LENGTH, JSONText, UTCDateTime, utcnow

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
KIND_LENGTH = 64
SEVERITY_LENGTH = 16
SUBJECT_LENGTH = 255


class NotificationBase(SQLModel):
    """One ``bhype_notify`` event as a user sees it in the web UI."""

    # Whom it concerns; NULL = every admin (an event without a user, e.g. a pool going bad).
    recipient: str | None = Field(default=None, max_length=USER_LENGTH)
    kind: str = Field(max_length=KIND_LENGTH)
    severity: str = Field(default="info", max_length=SEVERITY_LENGTH)
    message: str = Field(sa_type=Text)
    subject: str | None = Field(default=None, max_length=SUBJECT_LENGTH)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=JSONText)
    time: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class WebuiNotification(NotificationBase, table=True):
    """Table ``webui_notification``: append-only; rows older than ``webui.notification_keep_days`` go."""

    __tablename__ = "webui_notification"  # type: ignore[assignment]
    __table_args__ = (
        # "What is new for me since id N" is the stream's question, asked every second.
        Index("ix_webui_notification_recipient_id", "recipient", "id"),
        Index("ix_webui_notification_time", "time"),
        dict(TABLE_OPTIONS),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=ID)


class WebuiNotificationSeen(SQLModel, table=True):
    """Table ``webui_notification_seen``: per user, the newest notification id marked as read
    (one marker instead of a row per user and event: admin-wide events need no fan-out)."""

    __tablename__ = "webui_notification_seen"  # type: ignore[assignment]
    __table_args__ = dict(TABLE_OPTIONS)

    username: str = Field(primary_key=True, max_length=USER_LENGTH)
    last_read_id: int = Field(default=0, sa_type=ID)
    updated: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


WEBUI_MODELS: tuple[type[SQLModel], ...] = (WebuiNotification, WebuiNotificationSeen)
