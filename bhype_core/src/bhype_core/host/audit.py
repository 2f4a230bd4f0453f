"""Audit trail of host commands: who caused each one, what ran, how it ended, and where it goes.

Each command is delivered twice: once when it starts (``state`` ``running``, to the sinks
that have a ``started`` method) and once when it ends (``finished``, to every sink), both with
the same ``command_id``. A command cut off by a crash of the worker is then still in the trail,
attributed to its user and task (issue 11); recovery marks such rows ``interrupted``.
"""

from __future__ import annotations

import logging
import shlex
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

log = logging.getLogger("bhype.host.audit")

STDERR_TAIL_LINES = 10
STDERR_TAIL_CHARS = 2000

# The states of a command in the trail: started and not ended yet (or cut off by a crash),
# ended (whatever its exit status), and cut off by a crash as recovery found it.
RUNNING, FINISHED, INTERRUPTED = "running", "finished", "interrupted"


@dataclass(frozen=True)
class Actor:
    """Who caused the host commands run in the current context: a user and/or a task."""

    user: str | None = None
    task_id: str | None = None


# A ContextVar has to live at module level (that is how the stdlib keys it); it holds no
# service, only the per-context "who is acting" value, so it is not an import-time global
# in the sense of the style guide. Each asyncio task / copied context sees its own value.
_ACTOR: ContextVar[Actor] = ContextVar("bhype_host_actor", default=Actor())  # noqa: B039 (frozen)

_UNSET: Any = object()


def current_actor() -> Actor:
    """The :class:`Actor` set by the innermost :func:`acting_as` (empty when none is active)."""
    return _ACTOR.get()


@contextmanager
def acting_as(user: str | None = _UNSET, task_id: str | None = _UNSET) -> Iterator[Actor]:
    """Attribute every host command run inside the block to ``user`` and ``task_id``.

    A value not given is inherited from the enclosing block, so a worker can set the task and
    keep the user who queued it; pass ``None`` explicitly to clear it. Threads started inside
    the block do not inherit it (contextvars rule): copy the context
    (``contextvars.copy_context().run``) or enter ``acting_as`` again in the thread.

    :returns: the :class:`Actor` now in effect.
    """
    outer = _ACTOR.get()
    actor = Actor(
        user=outer.user if user is _UNSET else user,
        task_id=outer.task_id if task_id is _UNSET else task_id,
    )
    token = _ACTOR.set(actor)
    try:
        yield actor
    finally:
        _ACTOR.reset(token)


def stderr_tail(stderr: str, lines: int = STDERR_TAIL_LINES, chars: int = STDERR_TAIL_CHARS) -> str:
    """The last ``lines`` lines of ``stderr``, at most ``chars`` characters (kept from the end)."""
    tail = "\n".join(stderr.rstrip().splitlines()[-lines:])
    return tail[-chars:]


@dataclass(frozen=True)
class AuditRecord:
    """One host command as the audit trail shows it.

    ``returncode`` is ``None`` when the command never produced an exit status (not found,
    timed out); ``error`` then says why. ``target`` is ``"local"`` or ``"ssh://user@host:port"``.
    ``state`` is ``running`` for the record delivered when the command starts and ``finished``
    for the one delivered when it ends; ``command_id`` is the same in both.
    """

    time: datetime
    user: str | None
    task_id: str | None
    target: str
    argv: list[str]
    returncode: int | None
    duration: float
    dry_run: bool = False
    stderr_tail: str = ""
    error: str = ""
    command_id: str = ""
    state: str = FINISHED

    @property
    def command(self) -> str:
        """The argv as one shell-quoted line, for display only (never executed)."""
        return shlex.join(self.argv)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (time as ISO 8601 UTC)."""
        data = asdict(self)
        data["time"] = self.time.isoformat()
        data["duration"] = round(self.duration, 6)
        return data


AuditSink = Callable[[AuditRecord], object]
"""A sink receives every finished record; one that also has a ``started(record)`` method
receives the record of each command as it starts, too."""


def new_command_id() -> str:
    """A fresh id tying a command's start record to its end record."""
    return uuid.uuid4().hex


def start_record(*, target: str, argv: list[str], command_id: str, dry_run: bool = False) -> AuditRecord:
    """The record of a command that starts now (``state`` ``running``, no exit status yet),
    attributed to the :func:`current_actor`."""
    actor = current_actor()
    return AuditRecord(
        time=datetime.now(UTC), user=actor.user, task_id=actor.task_id, target=target, argv=list(argv),
        returncode=None, duration=0.0, dry_run=dry_run, command_id=command_id, state=RUNNING,
    )


def deliver_start(record: AuditRecord, sinks: Iterable[AuditSink]) -> None:
    """Hand a start record to every sink that takes them (``started``); a sink that raises is
    logged and skipped, like :func:`deliver`. Nothing is logged here: the end record is."""
    for sink in list(sinks):
        started = getattr(sink, "started", None)
        if started is None:
            continue
        try:
            started(record)
        except Exception:
            log.exception("audit sink %r failed for the start of %s", sink, record.command)


def make_record(
    *,
    target: str,
    argv: list[str],
    returncode: int | None,
    duration: float,
    dry_run: bool = False,
    stderr: str = "",
    error: str = "",
    command_id: str = "",
) -> AuditRecord:
    """Build a record for a command that just ended, attributed to the :func:`current_actor`."""
    actor = current_actor()
    return AuditRecord(
        time=datetime.now(UTC),
        user=actor.user,
        task_id=actor.task_id,
        target=target,
        argv=list(argv),
        returncode=returncode,
        duration=duration,
        dry_run=dry_run,
        stderr_tail=stderr_tail(stderr),
        error=error,
        command_id=command_id,
    )


def log_record(record: AuditRecord) -> None:
    """Write the record to the ``bhype.host.audit`` logger (always, whatever the sinks do)."""
    if record.dry_run:
        outcome = "dry run, not executed"
    elif record.error:
        outcome = record.error
    else:
        outcome = f"exit {record.returncode}"
    fine = (record.dry_run or record.returncode == 0) and not record.error
    level = logging.INFO if fine else logging.WARNING
    log.log(
        level,
        "host command user=%s task=%s target=%s: %s -> %s (%.3fs)",
        record.user or "-",
        record.task_id or "-",
        record.target,
        record.command,
        outcome,
        record.duration,
        extra={"bhype_audit": record.to_dict()},
    )


def deliver(record: AuditRecord, sinks: Iterable[AuditSink]) -> None:
    """Log ``record`` and hand it to every sink. A sink that raises is logged and skipped:
    auditing must never turn a command's outcome into a different one."""
    log_record(record)
    for sink in list(sinks):
        try:
            sink(record)
        except Exception:
            log.exception("audit sink %r failed for %s", sink, record.command)


@dataclass
class MemoryAuditSink:
    """A bounded in-memory trail of the most recent records (newest last), e.g. for the API."""

    maxlen: int = 1000
    records: deque[AuditRecord] = field(init=False)

    def __post_init__(self) -> None:
        self.records = deque(maxlen=self.maxlen)

    def __call__(self, record: AuditRecord) -> None:
        self.records.append(record)

    def recent(self, limit: int | None = None) -> list[AuditRecord]:
        """The newest ``limit`` records (all when ``None``), oldest first."""
        items = list(self.records)
        return items if limit is None else items[-limit:]
