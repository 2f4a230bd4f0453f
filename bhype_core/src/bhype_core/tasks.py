"""What a running task receives: its TaskContext (runtime, identity, log, progress, runner)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from bhype_core.errors import ValidationErrors

if TYPE_CHECKING:
    from bhype_core.config import Settings
    from bhype_core.runtime import Runtime

log = logging.getLogger("bhype.task")

MAX_LOG_LINE = 4000  # characters; a runaway line must not blow up the log store


class TaskReporter(Protocol):
    """Where a task's log lines and progress go.

    :class:`MemoryReporter` keeps them for the task's result; the per-user task queue
    (issue 3) supplies one that writes Task rows and the live log stream instead.
    """

    def log(self, context: TaskContext, line: LogLine) -> None:
        """Store one log line of ``context``'s task."""

    def progress(self, context: TaskContext, progress: Progress) -> None:
        """Store ``context``'s task's latest progress."""


@dataclass(frozen=True)
class LogLine:
    """One line of a task's log."""

    time: datetime
    message: str

    def to_dict(self) -> dict[str, Any]:
        return {"time": self.time.isoformat(), "message": self.message}


@dataclass(frozen=True)
class Progress:
    """A task's progress: ``percent`` 0–100 and what it is doing."""

    percent: float
    message: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"percent": self.percent, "message": self.message}


@dataclass
class MemoryReporter:
    """Keeps log lines and the latest progress in memory (returned with the task's result)."""

    lines: list[LogLine] = field(default_factory=list)
    latest: Progress | None = None

    def log(self, context: TaskContext, line: LogLine) -> None:
        self.lines.append(line)

    def progress(self, context: TaskContext, progress: Progress) -> None:
        self.latest = progress

    def to_dict(self) -> dict[str, Any]:
        """The log and progress as JSON data."""
        return {
            "log": [line.to_dict() for line in self.lines],
            "progress": self.latest.to_dict() if self.latest else None,
        }


@dataclass
class TaskContext:
    """The stable interface every task kind's ``run(context, **arguments)`` and every periodic
    job's ``run(context)`` receives.

    ``task_id`` is the queue's id for this run, ``kind`` the task kind (or periodic job) name,
    ``user`` who submitted it (``None`` for periodic jobs and system tasks). Host commands run
    through :attr:`runner` inside a task are attributed to ``user`` and ``task_id`` in the audit
    trail (the worker wraps the run in :func:`bhype_core.host.audit.acting_as`).
    """

    runtime: Runtime
    task_id: str
    kind: str
    user: str | None = None
    reporter: TaskReporter = field(default_factory=MemoryReporter)

    @property
    def settings(self) -> Settings:
        """The worker's validated settings."""
        return self.runtime.settings

    @property
    def runner(self) -> Any:
        """The host command runner (:class:`bhype_core.host.runner.Runner`)."""
        return self.runtime.runner

    def log(self, message: str) -> None:
        """Append one line to the task's log (also written to the worker's own log)."""
        text = str(message)
        if len(text) > MAX_LOG_LINE:
            text = text[:MAX_LOG_LINE] + "…"
        log.info("[%s %s] %s", self.kind, self.task_id, text)
        self.reporter.log(self, LogLine(datetime.now(UTC), text))

    def progress(self, percent: float, message: str = "") -> None:
        """Report how far the task is: ``percent`` from 0 to 100, and what it is doing now.

        :raises ValidationErrors: ``percent`` is not a number from 0 to 100.
        """
        if isinstance(percent, bool) or not isinstance(percent, (int, float)) or not (
            math.isfinite(percent) and 0 <= percent <= 100
        ):
            raise ValidationErrors([("percent", f"must be a number from 0 to 100, not {percent!r}")])
        self.reporter.progress(self, Progress(float(percent), str(message)))
