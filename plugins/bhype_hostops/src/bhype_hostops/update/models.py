"""Table ``hostops_update_run``: one host update workflow, its plan, its steps and where it is."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Text
from sqlmodel import Field, SQLModel

from bhype_core.plugin_api import ID, TABLE_OPTIONS, USER_LENGTH, JSONText, UTCDateTime, utcnow

MIGRATIONS = Path(__file__).resolve().parent / "migrations"

# A run's states. ``running``: a task is working on it (or will resume it after a reboot);
# ``failed``: stopped at ``step`` with ``error``, waiting for the admin to resume it or to bring
# the VMs back without updating; ``done`` and ``brought_back`` are final.
STATES = ("running", "failed", "done", "brought_back")
OPEN_STATES = ("running", "failed")


class UpdateRun(SQLModel, table=True):
    """Table ``hostops_update_run``. The workflow's state lives here (not only in the task's
    checkpoint) so that a worker started after the reboot, a resume after a failure, the API
    and the web UI all read the same record.

    ``plan`` is the plan shown before the run (VMs to bring back in order, services, updates,
    reboot, boot environment); ``data`` what the steps recorded (the boot environment made, the
    one expected after the reboot, the boot id before it, the VMs stopped and started, the
    services stopped); ``steps`` one entry per step reached (``step``, ``state``, ``message``,
    ``at``)."""

    __tablename__ = "hostops_update_run"  # type: ignore[assignment]
    __table_args__ = dict(TABLE_OPTIONS)

    id: int | None = Field(default=None, primary_key=True, sa_type=ID)
    task_id: str = Field(default="", max_length=64, index=True)
    owner: str = Field(max_length=USER_LENGTH)
    state: str = Field(default="running", max_length=16, index=True)
    step: str = Field(default="", max_length=32)
    error: str = Field(default="", sa_type=Text)
    plan: dict[str, Any] = Field(default_factory=dict, sa_type=JSONText)
    data: dict[str, Any] = Field(default_factory=dict, sa_type=JSONText)
    steps: list[dict[str, Any]] = Field(default_factory=list, sa_type=JSONText)
    created: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)

    def to_dict(self) -> dict[str, Any]:
        """The run as the API and the CLI show it."""
        return {
            "id": self.id, "task_id": self.task_id, "owner": self.owner, "state": self.state,
            "step": self.step, "error": self.error, "plan": self.plan, "data": self.data,
            "steps": self.steps, "created": self.created.isoformat(), "updated": self.updated.isoformat(),
        }


UPDATE_MODELS = (UpdateRun,)
