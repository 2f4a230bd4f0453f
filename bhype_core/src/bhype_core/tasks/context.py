"""What a running task receives: its TaskContext (runtime, identity, log, progress, runner)."""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from bhype_core.errors import BhypeError, ValidationErrors

if TYPE_CHECKING:
    from contextlib import AbstractContextManager

    from bhype_core.config import Settings
    from bhype_core.host.audit import Actor
    from bhype_core.runtime import Runtime

log = logging.getLogger("bhype.task")

MAX_LOG_LINE = 4000  # characters; a runaway line must not blow up the log store
MAX_PROGRESS_MESSAGE = 1000  # characters; the Task row's column size
LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING, "error": logging.ERROR}


class Cancelled(BhypeError):
    """Raised by :meth:`TaskContext.check_cancelled` when someone cancelled the running task;
    the worker then ends the task as ``cancelled``. Let it propagate (clean up in ``finally``)."""

    code = "cancelled"
    http_status = 409


class TaskReporter(Protocol):
    """Where a task's log lines and progress go.

    :class:`MemoryReporter` keeps them for the task's result; the per-user task queue
    (issue 3) supplies one that writes Task rows and the live log stream instead.
    """

    def log(self, context: TaskContext, line: LogLine) -> None:
        """Store one log line of ``context``'s task."""

    def progress(self, context: TaskContext, progress: Progress) -> None:
        """Store ``context``'s task's latest progress."""

    # Optional: ``cancel_requested(context) -> bool`` says whether someone asked to cancel the
    # task (the Task-row reporter reads it from the row); reporters without it never cancel.
    # Optional: ``checkpoint(context, state) -> None`` stores a resumable task's checkpoint.


@dataclass(frozen=True)
class SubTask:
    """A sub-task :meth:`TaskContext.submit` queued: its Task row id and kind."""

    id: str
    kind: str


@dataclass(frozen=True)
class SubTaskOutcome:
    """How a sub-task ended (or, after a ``wait`` timeout, where it is): its ``state``, the
    ``result`` of its ``run`` when it succeeded, its ``error`` (``{code, message, detail}``)
    otherwise."""

    id: str
    kind: str
    state: str
    result: Any = None
    error: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        """Whether the sub-task succeeded."""
        return self.state == "succeeded"


class SubTaskRunner(Protocol):
    """What the task queue gives a running task for sub-tasks
    (:class:`bhype_core.tasks.subtasks.SubTasks`)."""

    def submit(self, kind: str, arguments: dict[str, Any], host: str | None = None) -> SubTask:
        """Queue a child task (``host``: on another group host, run by that host's worker)."""

    def wait(self, context: TaskContext, handles: list[SubTask], timeout: float | None) -> list[SubTaskOutcome]:
        """Run or wait for the children; their outcomes in the order given."""


@dataclass(frozen=True)
class LogLine:
    """One line of a task's log, with its level (``debug``, ``info``, ``warning``, ``error``)."""

    time: datetime
    message: str
    level: str = "info"

    def to_dict(self) -> dict[str, Any]:
        return {"time": self.time.isoformat(), "message": self.message, "level": self.level}


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
    saved: dict[str, Any] | None = None

    def log(self, context: TaskContext, line: LogLine) -> None:
        self.lines.append(line)

    def progress(self, context: TaskContext, progress: Progress) -> None:
        self.latest = progress

    def checkpoint(self, context: TaskContext, state: dict[str, Any]) -> None:
        self.saved = state

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

    ``task_id`` is the queue's id for this run, ``kind`` the task kind name, ``user`` who
    submitted it (``None`` for periodic jobs and other tasks the system submits, owner
    ``@system``). Host commands run through :attr:`runner` inside a task are attributed to the
    owner and ``task_id`` in the audit trail (the worker wraps the run in
    :func:`bhype_core.host.audit.acting_as`).

    ``resume_state`` is ``None`` on a task's first run; a resumable kind's task resumed after
    its worker stopped gets its last :meth:`checkpoint` there (``{"step": …, "data": …}``).
    """

    runtime: Runtime
    task_id: str
    kind: str
    user: str | None = None
    reporter: TaskReporter = field(default_factory=MemoryReporter)
    resume_state: dict[str, Any] | None = None
    subtasks: SubTaskRunner | None = None
    # How many undo intents this run recorded (the worker forgets the journal at the end only
    # when there can be one: a DELETE less per task otherwise, issue 15).
    intents_recorded: int = field(default=0, repr=False)

    @property
    def settings(self) -> Settings:
        """The worker's validated settings."""
        return self.runtime.settings

    @property
    def runner(self) -> Any:
        """The host command runner (:class:`bhype_core.host.runner.Runner`)."""
        return self.runtime.runner

    def log(self, message: str, level: str = "info") -> None:
        """Append one line to the task's log (also written to the worker's own log).

        :param level: ``debug``, ``info`` (default), ``warning`` or ``error``.
        :raises ValidationErrors: an unknown level.
        """
        if level not in LOG_LEVELS:
            raise ValidationErrors([("level", f"must be one of {', '.join(LOG_LEVELS)}, not {level!r}")])
        text = str(message)
        if len(text) > MAX_LOG_LINE:
            text = text[:MAX_LOG_LINE] + "…"
        log.log(LOG_LEVELS[level], "[%s %s] %s", self.kind, self.task_id, text)
        self.reporter.log(self, LogLine(datetime.now(UTC), text, level))

    def progress(self, percent: float, message: str = "") -> None:
        """Report how far the task is: ``percent`` from 0 to 100, and what it is doing now.

        :raises ValidationErrors: ``percent`` is not a number from 0 to 100.
        """
        if isinstance(percent, bool) or not isinstance(percent, (int, float)) or not (
            math.isfinite(percent) and 0 <= percent <= 100
        ):
            raise ValidationErrors([("percent", f"must be a number from 0 to 100, not {percent!r}")])
        text = str(message)
        if len(text) > MAX_PROGRESS_MESSAGE:
            text = text[: MAX_PROGRESS_MESSAGE - 1] + "…"
        self.reporter.progress(self, Progress(float(percent), text))

    def cancel_requested(self) -> bool:
        """Whether someone asked to cancel this task (always false where cancel is unsupported,
        e.g. a context built by hand in a test)."""
        check = getattr(self.reporter, "cancel_requested", None)
        return bool(check(self)) if check is not None else False

    def check_cancelled(self) -> None:
        """A safe point: stop here if the task was cancelled.

        Call it between steps that leave the host consistent (after a disk is fully written,
        not half way through). Cheap enough to call in a loop: the Task-row reporter reads the
        flag at most a few times per second.

        :raises Cancelled: a cancel was requested; let it propagate.
        """
        if self.cancel_requested():
            raise Cancelled(f"task {self.task_id} was cancelled")

    def checkpoint(self, step: str, data: Any = None) -> None:
        """Record that the task reached ``step`` with ``data`` (JSON): a resumable kind's task
        whose worker stops is queued again and resumed with this as :attr:`resume_state`.

        Call it after a step's effect on the host is complete, before the next step begins.

        :raises ValidationErrors: ``step`` is not a non-empty string or ``data`` is not JSON data.
        """
        from bhype_core.tasks.serializer import check_json

        if not isinstance(step, str) or not step:
            raise ValidationErrors([("step", f"must be a non-empty string, not {step!r}")])
        try:
            check_json(data, "the checkpoint data")
        except TypeError as exc:
            raise ValidationErrors([("data", str(exc))]) from None
        state = {"step": step, "data": data}
        save = getattr(self.reporter, "checkpoint", None)
        if save is not None:
            save(self, state)
        self.resume_state = state

    def submit(self, kind: str, arguments: dict[str, Any] | None = None, *, host: str | None = None) -> SubTask:
        """Queue a sub-task of ``kind``: a Task row owned by this task's owner, linked to this
        task (``parent_id``), run in this task's slot when :meth:`wait` is called.

        ``host`` (issue 22): another host of the group whose worker runs the sub-task (work on
        that host's VMs or files: a move's receiving side). Its scheduler starts it like a
        top-level task, except that locks this task (or its ancestors) hold do not block it;
        :meth:`wait` follows it through the shared database. A registered host that does not
        know ``kind`` refuses it here (``ValidationErrors`` at ``host``).

        :raises ValidationErrors: unknown kind or bad arguments (as for any submission).
        :raises BhypeError: this task does not run in the task queue (no sub-tasks there).
        """
        return self._subtasks().submit(kind, {} if arguments is None else arguments, host)

    def wait(self, handles: SubTask | list[SubTask], timeout: float | None = None) -> list[SubTaskOutcome]:
        """Run this task's sub-tasks ``handles`` (in order, in this task's slot) and return how
        each ended. A sub-task whose lock another task holds is waited for; after ``timeout``
        seconds of such waiting the outcomes say where the rest are (``queued``).

        A cancel of this task cancels its sub-tasks; :class:`Cancelled` is raised here then.
        """
        items = [handles] if isinstance(handles, SubTask) else list(handles)
        return self._subtasks().wait(self, items, timeout)

    def _subtasks(self) -> SubTaskRunner:
        if self.subtasks is None:
            raise BhypeError(f"task {self.task_id} cannot run sub-tasks outside the task queue")
        return self.subtasks

    def intent(self, action: str, description: str, **arguments: Any) -> int:
        """Record, before a side effect, how to undo it should this task be interrupted.

        Call it *before* the step that makes something (a directory, a disk, a bridge, a
        clone): the row is committed at once, so a ``kill -9`` of the worker half way through
        the step still leaves recovery knowing what to remove. ``action`` is a registered
        :class:`~bhype_core.registry.UndoAction` (``bhype_register_undo_actions``), called with
        ``arguments`` (JSON) when recovery replays the journal, newest intent first. When the
        task ends, its intents are forgotten (a failure undoes its own steps). See
        :mod:`bhype_core.tasks.intents`.

        :param description: what is about to be made, for the task log (``VM directory /…``).
        :raises ValidationErrors: no such undo action, or arguments that are not JSON.
        :returns: the intent's id.
        """
        from bhype_core.tasks.intents import record

        return record(self, action, description, arguments)

    def acting_as(self) -> AbstractContextManager[Actor]:
        """Attribute host commands in the block to this task's user and id.

        The worker already does this around ``run``; use it again in threads a task starts
        (context variables do not cross into new threads).
        """
        from bhype_core.host.audit import acting_as

        return acting_as(user=self.user, task_id=self.task_id)
