"""Living through a restart of the shared MariaDB or Redis (issue 22): one log line per outage
instead of a traceback per retry, and database writes a task cannot do without, retried until
the server is back.

The Task rows are the truth. A worker that loses its database or its Redis keeps running: its
loops (scheduler pass, huey's worker and schedule threads, the heartbeat) log the outage once
through :class:`OutageLog` and try again on their own timers; SQLAlchemy's pool (pre-ping) and
redis-py's pool open new connections once the server answers. The two writes that a running
task's outcome depends on — picking up the row, ending it — wait for the server
(:func:`retry_while_down`) instead of leaving a row ``running`` under a live worker forever.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from bhype_core.db.task_models import Task
    from bhype_core.tasks.store import WorkerIdentity

log = logging.getLogger("bhype.tasks")

T = TypeVar("T")

# How long a task's pick-up or end waits for the database before giving up (the row then stays
# running until recovery sees it; a restart takes seconds, a failover a minute or two).
RETRY_FOR = 600.0
FIRST_PAUSE = 0.2
LONGEST_PAUSE = 2.0


def is_outage(exc: BaseException) -> bool:
    """Whether ``exc`` says the database or Redis server cannot be reached right now (connection
    refused or lost, server gone away or shutting down), as opposed to a bug or bad data."""
    from sqlalchemy.exc import DBAPIError, OperationalError

    if isinstance(exc, OperationalError | ConnectionError | TimeoutError):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    try:
        import redis
    except ImportError:  # pragma: no cover - redis is a core dependency
        return False
    return isinstance(exc, redis.ConnectionError | redis.TimeoutError | redis.BusyLoadingError)


def first_line(exc: BaseException) -> str:
    """``Type: first line of the message`` (drivers' messages run over many lines)."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


class OutageLog:
    """Logs the start and the end of one server's outage as seen by one loop, once each.

    ``failed(exc)`` on every failed attempt (the first logs a warning, the others only at
    debug level), ``ok()`` after every successful one (logs the recovery once). Thread-safe:
    huey's worker threads share one per queue.
    """

    def __init__(self, what: str, logger: logging.Logger = log) -> None:
        self.what = what
        self.logger = logger
        self._lock = threading.Lock()
        self._since: float | None = None
        self._failures = 0

    @property
    def down(self) -> bool:
        """Whether the last attempt failed."""
        return self._since is not None

    def failed(self, exc: BaseException) -> None:
        """Record a failed attempt."""
        with self._lock:
            self._failures += 1
            first = self._since is None
            if first:
                self._since = time.monotonic()
        if first:
            self.logger.warning("%s: cannot use the server (%s); retrying quietly until it works again",
                                self.what, first_line(exc))
        else:
            self.logger.debug("%s: still unreachable (%s)", self.what, first_line(exc))

    def ok(self) -> None:
        """Record a successful attempt."""
        if self._since is None:
            return
        with self._lock:
            since, failures = self._since, self._failures
            self._since, self._failures = None, 0
        if since is not None:
            self.logger.warning("%s: the server works again after %.1f s (%d failed attempt(s))",
                                self.what, time.monotonic() - since, failures)


def retry_while_down(call: Callable[[], T], what: str, retry_for: float = RETRY_FOR,
                     sleep: Callable[[float], object] = time.sleep) -> T:
    """``call()``, tried again while it fails with an outage (:func:`is_outage`), pausing
    0.2 s and doubling up to 2 s, for at most ``retry_for`` seconds. Any other error, or the
    last outage error, is raised.

    ``call`` must be safe to repeat: a commit whose answer was lost may have happened.
    """
    outage = OutageLog(what)
    deadline = time.monotonic() + retry_for
    pause = FIRST_PAUSE
    while True:
        try:
            value = call()
        except Exception as exc:
            if not is_outage(exc) or time.monotonic() + pause > deadline:
                raise
            outage.failed(exc)
            sleep(pause)
            pause = min(pause * 2, LONGEST_PAUSE)
            continue
        outage.ok()
        return value


def pick_up(engine: Engine, task_id: str, token: str, worker: WorkerIdentity) -> Task | None:
    """:func:`bhype_core.tasks.store.pick_up`, waiting for the database when it is down.

    Repeating it is safe: when the database restarted after committing a pick-up but before
    answering, the repeat finds the row picked up under the same token — only this thread can
    have done that (one queue message per token) — and returns it.
    """
    from bhype_core.tasks import store

    attempts = [0]

    def attempt() -> Task | None:
        attempts[0] += 1
        task = store.pick_up(engine, task_id, token, worker)
        if task is None and attempts[0] > 1:
            mine = store.get_picked_up(engine, task_id, token)
            if mine is not None and mine.picked_up is not None:
                return mine
        return task

    return retry_while_down(attempt, f"task {task_id}: picking it up")
