"""Table ``core_task_intent``: the undo journal of running tasks (issue 11, crash safety).

A task writes (and commits) one row *before* each side effect, naming the registered undo
action that reverses it and that action's JSON arguments. The rows of a task that ends go away
(its own rollback handled a failure); the rows of a task whose worker died are replayed by
recovery, newest first. Kept apart from ``core_task`` so resumable tasks (persisted steps)
can live beside it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Text
from sqlmodel import Field, SQLModel

from bhype_core.db.models import utcnow
from bhype_core.db.task_models import TASK_ID_LENGTH
from bhype_core.db.types import ID, TABLE_OPTIONS, JSONText, UTCDateTime

ACTION_LENGTH = 128
DESCRIPTION_LENGTH = 1000


class TaskIntent(SQLModel, table=True):
    """One side effect a task is about to make, and how recovery undoes it."""

    __tablename__ = "core_task_intent"  # type: ignore[assignment]
    __table_args__ = dict(TABLE_OPTIONS)

    id: int | None = Field(default=None, primary_key=True, sa_type=ID)
    task_id: str = Field(max_length=TASK_ID_LENGTH, index=True)
    action: str = Field(max_length=ACTION_LENGTH)
    description: str = Field(default="", max_length=DESCRIPTION_LENGTH)
    arguments: dict[str, Any] = Field(default_factory=dict, sa_type=JSONText)
    created: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    # Replays tried so far (a failing undo is retried at the next worker start, a few times).
    attempts: int = 0
    error: str | None = Field(default=None, sa_type=Text)


INTENT_MODELS: tuple[type[SQLModel], ...] = (TaskIntent,)
