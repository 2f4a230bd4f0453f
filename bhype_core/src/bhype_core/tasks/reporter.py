"""The TaskContext reporter of scheduled tasks: log lines and progress go to the Task row."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from sqlalchemy.engine import Engine

from bhype_core.tasks import store

if TYPE_CHECKING:
    from bhype_core.tasks import LogLine, Progress, TaskContext

# Seconds between reads of the cancel flag: check_cancelled() may sit in a tight loop, the
# database should not (a cancel is honoured within this delay of the next safe point).
CANCEL_POLL = 0.2


class RowReporter:
    """Writes a running task's log lines to ``core_task_log`` and its progress to its row.

    ``token`` is the dispatch token the task runs under: once recovery has declared the task
    interrupted, progress writes stop matching and are dropped.
    """

    def __init__(
        self, engine: Engine, task_id: str, token: str | None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.engine = engine
        self.task_id = task_id
        self.token = token
        self._clock = clock
        self._lock = threading.Lock()
        self._checked_at: float | None = None
        self._cancelled = False

    def log(self, context: TaskContext, line: LogLine) -> None:
        """Append the line to the task's log."""
        store.append_log(self.engine, self.task_id, line.message, level=line.level, time=line.time)

    def progress(self, context: TaskContext, progress: Progress) -> None:
        """Store the latest progress on the Task row."""
        store.set_progress(self.engine, self.task_id, self.token, progress.percent, progress.message)

    def checkpoint(self, context: TaskContext, state: dict[str, Any]) -> None:
        """Store a resumable task's checkpoint on its row (dropped once the task no longer
        runs under this reporter's token)."""
        store.save_checkpoint(self.engine, self.task_id, self.token, state)

    def cancel_requested(self, context: TaskContext) -> bool:
        """Whether the row's cancel flag is set (read at most every :data:`CANCEL_POLL` s)."""
        with self._lock:
            if self._cancelled:
                return True
            now = self._clock()
            if self._checked_at is not None and now - self._checked_at < CANCEL_POLL:
                return False
            self._checked_at = now
            self._cancelled = store.is_cancel_requested(self.engine, self.task_id)
            return self._cancelled
