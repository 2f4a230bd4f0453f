"""The TaskContext reporter of scheduled tasks: log lines and progress go to the Task row."""

from __future__ import annotations

import logging
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
# Seconds a progress report may wait before it is written: reports within this time of the
# task's start or of the last write are coalesced into one UPDATE (a task done by then ends
# with its final row instead: no progress commit at all, issue 15).
PROGRESS_DELAY = 0.25


class RowReporter:
    """Writes a running task's log lines to ``core_task_log`` and its progress to its row.

    ``token`` is the dispatch token the task runs under: once recovery has declared the task
    interrupted, progress writes stop matching and are dropped.
    """

    def __init__(
        self, engine: Engine, task_id: str, token: str | None, clock: Callable[[], float] = time.monotonic,
        *, fresh: bool = False, progress_delay: float = PROGRESS_DELAY,
    ) -> None:
        self.engine = engine
        self.task_id = task_id
        self.token = token
        self._clock = clock
        self._lock = threading.Lock()
        self._checked_at: float | None = None
        self._cancelled = False
        # The last log seq this reporter wrote (a fresh run's log is empty): the next line is one
        # plain INSERT (store.append_log ``after``); None = look it up under the lock.
        self._seq: int | None = 0 if fresh else None
        self._progress_delay = progress_delay
        self._written_at = clock()  # the start counts as a write: early reports wait
        self._pending: Progress | None = None
        self._scheduled = False
        self._closed = False

    def log(self, context: TaskContext, line: LogLine) -> None:
        """Append the line to the task's log."""
        with self._lock:
            after = self._seq
        seq = store.append_log(self.engine, self.task_id, line.message, level=line.level, time=line.time,
                               after=after)
        with self._lock:
            self._seq = max(seq, self._seq or 0)

    def progress(self, context: TaskContext, progress: Progress) -> None:
        """Store the latest progress on the Task row: at once when the last write is older than
        the delay, else when the delay has passed (reports in between only replace it)."""
        with self._lock:
            if self._closed:
                return
            self._pending = progress
            if self._scheduled:
                return
            wait = self._written_at + self._progress_delay - self._clock()
            if wait > 0:
                self._scheduled = True
                FLUSHER.schedule(self, time.monotonic() + wait)
                return
        self._flush()

    def _flush(self) -> None:
        with self._lock:
            progress, self._pending, self._scheduled = self._pending, None, False
            if progress is None or self._closed:
                return
            self._written_at = self._clock()
        # Guarded by state and token: a write racing the task's end matches nothing.
        store.set_progress(self.engine, self.task_id, self.token, progress.percent, progress.message)

    def close(self) -> None:
        """The task ends: drop progress not yet written (its final row replaces it)."""
        with self._lock:
            self._closed = True
            self._pending = None
            scheduled, self._scheduled = self._scheduled, False
        if scheduled:
            FLUSHER.cancel(self)

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


class _Flusher:
    """One daemon thread writing the reporters' delayed progress when it is due (a thread per
    report would cost more than the write it saves)."""

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._due: dict[RowReporter, float] = {}
        self._thread: threading.Thread | None = None

    def schedule(self, reporter: RowReporter, due: float) -> None:
        with self._condition:
            self._due[reporter] = due
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name="bhype-progress", daemon=True)
                self._thread.start()
            self._condition.notify()

    def cancel(self, reporter: RowReporter) -> None:
        with self._condition:
            self._due.pop(reporter, None)

    def _run(self) -> None:
        while True:
            with self._condition:
                now = time.monotonic()
                ready = [reporter for reporter, due in self._due.items() if due <= now]
                for reporter in ready:
                    del self._due[reporter]
                if not ready:
                    self._condition.wait(min(self._due.values()) - now if self._due else None)
                    continue
            for reporter in ready:
                try:
                    reporter._flush()
                except Exception:  # progress is best effort; the next report tries again
                    logging.getLogger("bhype.tasks").exception("task %s: progress not written", reporter.task_id)


FLUSHER = _Flusher()
