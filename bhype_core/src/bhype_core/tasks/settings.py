"""``[tasks]``: limits and timing of the per-user task queue (registered by ``core_tasks``)."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from bhype_core.config import Section
from bhype_core.errors import ConfigError

SECTION = "tasks"


class TaskSettings(Section):
    """``[tasks]``: how many tasks run at once and how often the scheduler looks."""

    per_user_limit: int = Field(2, ge=1, le=1000, description="running tasks per user")
    max_running: int = Field(
        0, ge=0, le=10000,
        description="running tasks overall; 0 = queue.workers (set it to the sum of all "
        "workers' threads when several worker processes share one queue)",
    )
    poll_interval: float = Field(
        1.0, gt=0, le=60, description="seconds between scheduler passes when nothing wakes it"
    )
    sweep_interval: float = Field(
        10.0, gt=0, le=3600, description="seconds between checks for tasks whose worker died"
    )
    system_keep_days: float = Field(
        7.0, gt=0, le=3650,
        description="days to keep the system's own tasks (periodic runs) after they succeeded",
    )
    stream_interval: float = Field(
        0.25, gt=0, le=10, description="seconds between checks for news in a live task stream"
    )


def task_settings(runtime: Any) -> TaskSettings:
    """The runtime's ``[tasks]`` section, or the defaults when no plugin declared it (a test
    runtime built without ``core_tasks``)."""
    try:
        section = runtime.settings.section(SECTION)
    except ConfigError:
        return TaskSettings()
    return section if isinstance(section, TaskSettings) else TaskSettings.model_validate(section.model_dump())


def total_slots(settings: TaskSettings, queue_workers: int) -> int:
    """How many tasks may run at once overall: ``tasks.max_running``, else ``queue.workers``."""
    return settings.max_running or queue_workers
