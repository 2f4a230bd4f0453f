"""The per-user task queue's tables: ``core_task`` (one row per task) and ``core_task_log``."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import Double, Index, Text, UniqueConstraint
from sqlmodel import Field, SQLModel

from bhype_core.db.models import USER_LENGTH, utcnow
from bhype_core.db.types import ID, TABLE_OPTIONS, JSONText, UTCDateTime

TASK_ID_LENGTH = 36  # str(uuid4())
KIND_LENGTH = 128
TARGET_LENGTH = 255
STATE_LENGTH = 16
MESSAGE_LENGTH = 1000  # progress messages are one line; TaskContext trims longer ones
WORKER_ID_LENGTH = 64
HOST_LENGTH = 255
LEVEL_LENGTH = 16

# Every state a task can be in; the last four are final.
QUEUED, RUNNING = "queued", "running"
SUCCEEDED, FAILED, CANCELLED, INTERRUPTED = "succeeded", "failed", "cancelled", "interrupted"
STATES = (QUEUED, RUNNING, SUCCEEDED, FAILED, CANCELLED, INTERRUPTED)
FINAL_STATES = (SUCCEEDED, FAILED, CANCELLED, INTERRUPTED)
RETRYABLE_STATES = (FAILED, CANCELLED, INTERRUPTED)


class TaskBase(SQLModel):
    """What a task is and how far it got, as the API shows it."""

    owner: str = Field(max_length=USER_LENGTH, index=True)
    kind: str = Field(max_length=KIND_LENGTH, index=True)
    target: str = Field(default="", max_length=TARGET_LENGTH)
    arguments: dict[str, Any] = Field(default_factory=dict, sa_type=JSONText)
    locks: list[str] = Field(default_factory=list, sa_type=JSONText)
    state: str = Field(default=QUEUED, max_length=STATE_LENGTH, index=True)
    progress: float = Field(default=0.0, sa_type=Double)
    progress_message: str = Field(default="", max_length=MESSAGE_LENGTH)
    created: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, index=True)
    # When the scheduler started it (state running, slot and locks taken) ...
    started: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # ... and when a worker thread picked it up and began running its code.
    picked_up: datetime | None = Field(default=None, sa_type=UTCDateTime)
    finished: datetime | None = Field(default=None, sa_type=UTCDateTime)
    result: Any | None = Field(default=None, sa_type=JSONText)
    error: dict[str, Any] | None = Field(default=None, sa_type=JSONText)
    cancel_requested: bool = False
    retry_of: str | None = Field(default=None, max_length=TASK_ID_LENGTH, index=True)
    # The task that submitted this one as a sub-task (it runs the child in its own slot).
    parent_id: str | None = Field(default=None, max_length=TASK_ID_LENGTH, index=True)
    worker_host: str | None = Field(default=None, max_length=HOST_LENGTH)
    worker_pid: int | None = None
    # The group host whose worker runs it (issue 22, bhype_core.hosts); '' = any (system tasks).
    host: str = Field(default="", max_length=63, index=True, sa_column_kwargs={"server_default": ""})


class Task(TaskBase, table=True):
    """Table ``core_task``.

    ``worker_id`` names the worker process instance that holds the task (the one that started
    it, then the one running it); ``dispatch_token`` changes on every start, so a stale queue
    message for an earlier start can never run the task a second time.
    """

    __tablename__ = "core_task"  # type: ignore[assignment]
    __table_args__ = (
        # The dispatcher reads queued tasks in submission order; fairness asks per owner.
        Index("ix_core_task_state_created", "state", "created"),
        Index("ix_core_task_owner_started", "owner", "started"),
        dict(TABLE_OPTIONS),
    )

    id: str = Field(primary_key=True, max_length=TASK_ID_LENGTH)
    worker_id: str | None = Field(default=None, max_length=WORKER_ID_LENGTH)
    dispatch_token: str | None = Field(default=None, max_length=TASK_ID_LENGTH)
    # A resumable kind's last checkpoint, ``{"step": str, "data": JSON}``; a worker that picks
    # the task up again (after a crash or reboot) hands it to the kind as ``resume_state``.
    checkpoint: dict[str, Any] | None = Field(default=None, sa_type=JSONText)


class TaskLogBase(SQLModel):
    """One line of a task's log; ``seq`` counts from 1 within the task."""

    seq: int
    time: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    level: str = Field(default="info", max_length=LEVEL_LENGTH)
    message: str = Field(sa_type=Text)


class TaskLog(TaskLogBase, table=True):
    """Table ``core_task_log``: append-only; rows go when their task is deleted."""

    __tablename__ = "core_task_log"  # type: ignore[assignment]
    __table_args__ = (
        UniqueConstraint("task_id", "seq", name="uq_core_task_log_task_seq"),
        dict(TABLE_OPTIONS),
    )

    id: int | None = Field(default=None, primary_key=True, sa_type=ID)
    task_id: str = Field(max_length=TASK_ID_LENGTH, foreign_key="core_task.id", ondelete="CASCADE")


TASK_MODELS: tuple[type[SQLModel], ...] = (Task, TaskLog)
