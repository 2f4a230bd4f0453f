"""Notifications in the database: storing ``bhype_notify`` events, and each user's view of them.

Visibility: an event addressed to a user (``Event.user``) is that user's; an event addressed to
nobody is for every admin (``bhype_core.events.Event``: "None: admins"). Read state is one
marker per user, the newest id marked read.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, or_, select
from sqlalchemy.engine import Engine
from sqlmodel import Session, col

from bhype_core.plugin_api import Event, session
from bhype_webui.notify_models import WebuiNotification, WebuiNotificationSeen

log = logging.getLogger("bhype.webui.notify")

MAX_MESSAGE = 4000  # characters; a toast shows one line, the list a paragraph
MAX_LIST = 200


@dataclass(frozen=True)
class Viewer:
    """Who is looking: a user name and whether they are an admin (a ``Principal`` fits)."""

    name: str
    is_admin: bool


def _json_safe(data: Any) -> dict[str, Any]:
    # Event data comes from every plugin; anything not JSON becomes its text, never an error.
    try:
        value = json.loads(json.dumps(data, default=str))
    except (TypeError, ValueError):
        return {"repr": repr(data)[:MAX_MESSAGE]}
    return value if isinstance(value, dict) else {"value": value}


def store_event(engine: Engine, event: Event, keep_days: int = 30) -> int:
    """Keep ``event`` for its recipient (``event.user``; ``None``: admins) and drop notifications
    older than ``keep_days``. Returns the new row's id."""
    row = WebuiNotification(
        recipient=event.user,
        kind=event.kind[:64],
        severity=event.severity,
        message=event.message[:MAX_MESSAGE],
        subject=(event.subject or None) and event.subject[:255],
        data=_json_safe(event.data),
        time=event.time,
    )
    cutoff = datetime.now(UTC) - timedelta(days=keep_days)
    with Session(engine, expire_on_commit=False) as db:
        db.add(row)
        db.execute(delete(WebuiNotification).where(col(WebuiNotification.time) < cutoff))
        db.commit()
    assert row.id is not None
    return row.id


def visible_to(viewer: Viewer) -> Any:
    """The SQL condition for the notifications ``viewer`` may see."""
    mine = col(WebuiNotification.recipient) == viewer.name
    if viewer.is_admin:
        return or_(mine, col(WebuiNotification.recipient).is_(None))
    return mine


def last_read(db: Session, viewer: Viewer) -> int:
    """The newest id ``viewer`` marked as read (0: none)."""
    seen = db.get(WebuiNotificationSeen, viewer.name)
    return seen.last_read_id if seen else 0


def latest_id(engine: Engine, viewer: Viewer) -> int:
    """The newest notification id ``viewer`` can see (0: none); a stream starts after it."""
    with Session(engine) as db:
        value = db.execute(select(func.max(WebuiNotification.id)).where(visible_to(viewer))).scalar()
    return int(value or 0)


def unread_count(engine: Engine, viewer: Viewer) -> int:
    """How many visible notifications are newer than the viewer's read marker."""
    with Session(engine) as db:
        marker = last_read(db, viewer)
        query = (
            select(func.count())
            .select_from(WebuiNotification)
            .where(and_(visible_to(viewer), col(WebuiNotification.id) > marker))
        )
        return int(db.execute(query).scalar() or 0)


def list_notifications(
    engine: Engine, viewer: Viewer, *, unread_only: bool = False, limit: int = 50
) -> tuple[list[WebuiNotification], int]:
    """The viewer's notifications, newest first, and their read marker."""
    limit = max(1, min(limit, MAX_LIST))
    with Session(engine, expire_on_commit=False) as db:
        marker = last_read(db, viewer)
        query = select(WebuiNotification).where(visible_to(viewer))
        if unread_only:
            query = query.where(col(WebuiNotification.id) > marker)
        query = query.order_by(col(WebuiNotification.id).desc()).limit(limit)
        return list(db.execute(query).scalars()), marker


def newer_than(engine: Engine, viewer: Viewer, after: int, limit: int = 50) -> list[WebuiNotification]:
    """Visible notifications with an id above ``after``, oldest first (what a stream sends next)."""
    with Session(engine, expire_on_commit=False) as db:
        query = (
            select(WebuiNotification)
            .where(and_(visible_to(viewer), col(WebuiNotification.id) > after))
            .order_by(col(WebuiNotification.id))
            .limit(limit)
        )
        return list(db.execute(query).scalars())


def mark_read(engine: Engine, viewer: Viewer, up_to: int | None = None) -> int:
    """Move the viewer's read marker to ``up_to`` (default: their newest notification); it never
    moves back. Returns the marker."""
    target = latest_id(engine, viewer) if up_to is None else max(0, up_to)
    with session(engine, write=True) as db:
        seen = db.get(WebuiNotificationSeen, viewer.name)
        if seen is None:
            seen = WebuiNotificationSeen(username=viewer.name, last_read_id=target)
        elif target > seen.last_read_id:
            seen.last_read_id = target
            seen.updated = datetime.now(UTC)
        db.add(seen)
    return seen.last_read_id


def public(row: WebuiNotification) -> dict[str, Any]:
    """A notification as JSON (the API and the live stream)."""
    return {
        "id": row.id,
        "kind": row.kind,
        "severity": row.severity,
        "message": row.message,
        "subject": row.subject,
        "data": row.data,
        "time": row.time.isoformat(),
        "for_admins": row.recipient is None,
    }
