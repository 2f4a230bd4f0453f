"""The core's one huey instance: built from settings, every registered task kind bound to it."""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from huey import Huey
from huey.exceptions import ResultTimeout, TaskException
from huey.storage import MemoryStorage, PriorityRedisStorage, SqliteStorage

from bhype_core.errors import ConfigError, TaskFailed
from bhype_core.private_files import ensure_private_sqlite
from bhype_core.queue import scheduled
from bhype_core.queue.binding import TaskRunFailed, bind_periodic_jobs, bind_tasks, validate_submission
from bhype_core.queue.serializer import JsonSerializer
from bhype_core.tasks import MemoryReporter, TaskReporter

if TYPE_CHECKING:
    from collections.abc import Callable

    from huey.api import TaskWrapper

    from bhype_core.config import Settings
    from bhype_core.registry import Registry
    from bhype_core.runtime import Runtime
    from bhype_core.taskqueue.scheduler import Scheduler

log = logging.getLogger("bhype.queue")

# Redis client timeouts: a dead or hung server must turn into an error, never a hang. The read
# timeout must exceed huey's blocking dequeue (read_timeout=1 s below).
REDIS_CONNECT_TIMEOUT = 5.0
REDIS_SOCKET_TIMEOUT = 10.0


class BhypeHuey(Huey):
    """huey, with failures reported as structured data (kind, plugin, type, log)."""

    def build_error_result(self, task: Any, exception: BaseException) -> dict[str, Any]:
        result: dict[str, Any] = super().build_error_result(task, exception)
        if isinstance(exception, TaskRunFailed):
            result.update(exception.details())
        return result


@dataclass(frozen=True)
class TaskHandle:
    """What :meth:`BhypeQueue.enqueue` returns: enough to find the task again by its id."""

    id: str
    kind: str
    user: str | None = None


@dataclass(frozen=True)
class TaskOutcome:
    """A finished task: what ``run`` returned, its log lines and last progress."""

    task_id: str
    value: Any
    log: list[dict[str, Any]]
    progress: dict[str, Any] | None


class BhypeQueue:
    """The task queue of one process: a huey instance plus the task kinds bound to it.

    Build it with :func:`make_queue` (``Runtime.queue`` does). ``runtime`` is the runtime whose
    services the tasks use when they run in this process (the worker, the in-process worker,
    the ``memory`` backend); a process that only enqueues may leave it unset.
    """

    def __init__(
        self,
        huey: BhypeHuey,
        backend: str,
        registry: Registry,
        detail: str,
        runtime: Runtime | None = None,
    ) -> None:
        self.huey = huey
        self.backend = backend
        self.registry = registry
        self.detail = detail
        self.runtime = runtime
        # Where log lines and progress of tasks queued directly (enqueue) go; scheduled Task
        # rows report to their row instead (bhype_core.taskqueue.reporter).
        self.reporter_factory: Callable[[], TaskReporter] = MemoryReporter
        self.tasks: dict[str, TaskWrapper] = bind_tasks(self)
        self.periodic: dict[str, TaskWrapper] = bind_periodic_jobs(self)
        self.scheduled: dict[str, TaskWrapper] = scheduled.bind_scheduled(self)
        self._scheduler: Scheduler | None = None
        self._scheduler_lock = threading.Lock()

    @property
    def scheduler(self) -> Scheduler:
        """This process's task scheduler (built on first use; :meth:`Scheduler.start` runs it).

        Only a process that consumes the queue needs it: it owns the worker's lease, which
        proves to other workers that the tasks it runs are alive.
        """
        with self._scheduler_lock:
            if self._scheduler is None:
                from bhype_core.taskqueue.scheduler import Scheduler

                self._scheduler = Scheduler(self.require_runtime(), self)
            return self._scheduler

    @property
    def running_scheduler(self) -> Scheduler | None:
        """The scheduler if its thread runs in this process, else ``None``."""
        scheduler = self._scheduler
        return scheduler if scheduler is not None and scheduler.running else None

    def send_scheduled(self, task_id: str, token: str) -> None:
        """Hand the started Task row ``task_id`` to a worker thread (raises what the storage
        raises; the scheduler then gives the claim back)."""
        scheduled.send(self, scheduled.EXECUTE, task_id, token)

    def nudge(self) -> bool:
        """Ask the workers' schedulers for a pass now (a task was submitted or cancelled).

        Best effort: the Task row is already stored and schedulers also look on a timer, so a
        storage failure here is logged, not raised. Returns whether the nudge was sent.
        """
        running = self.running_scheduler
        if running is not None:  # the in-process worker: no round trip needed
            running.wake()
            return True
        try:
            scheduled.send(self, scheduled.NUDGE)
        except Exception as exc:  # the row is safe; the scheduler's timer picks it up
            log.warning("could not nudge the task scheduler: %s: %s", type(exc).__name__, exc)
            return False
        return True

    def require_runtime(self) -> Runtime:
        """The runtime tasks run with here; an error if this process only enqueues."""
        if self.runtime is None:
            raise ConfigError("this queue has no runtime to run tasks with; build it through Runtime.queue")
        return self.runtime

    def enqueue(
        self,
        kind: str,
        arguments: dict[str, Any] | None = None,
        *,
        user: str | None = None,
        task_id: str | None = None,
    ) -> TaskHandle:
        """Queue one run of task kind ``kind`` with ``arguments`` for the worker.

        :param kind: a registered task kind name (``core.ping``).
        :param arguments: keyword arguments for the kind's ``run`` (JSON data).
        :param user: who asked for it (passed to the task's context, written to the audit log).
        :param task_id: the id to use (issue 3 passes its Task row's id); default a new UUID.
        :raises ValidationErrors: unknown kind (path ``kind``), arguments that do not fit the
            kind's ``run`` (``arguments.<name>``) or are not JSON data; nothing is queued then.
        """
        arguments = {} if arguments is None else arguments
        validate_submission(self, kind, arguments, user, task_id)
        task = self.tasks[kind].s(arguments=arguments, user=user, id=task_id)
        self.huey.enqueue(task)
        log.debug("queued %s %s for %s", kind, task.id, user)
        return TaskHandle(task.id, kind, user)

    def outcome(
        self, handle: TaskHandle | str, timeout: float | None = 30.0, *, preserve: bool = False
    ) -> TaskOutcome:
        """Wait up to ``timeout`` seconds for the task to finish and return its outcome.

        Reading a result removes it from the queue's store unless ``preserve`` is true.

        :raises TaskFailed: the task raised; the error names the kind, plugin and exception.
        :raises TimeoutError: no result within ``timeout`` (the task may still be queued).
        """
        task_id = handle.id if isinstance(handle, TaskHandle) else handle
        try:
            envelope = self.huey.result(task_id, blocking=True, timeout=timeout, preserve=preserve)
        except ResultTimeout:
            raise TimeoutError(f"task {task_id} has no result after {timeout} s") from None
        except TaskException as exc:
            raise task_failed(task_id, exc.metadata) from None
        return TaskOutcome(task_id, envelope["value"], envelope["log"], envelope["progress"])

    def result(
        self, handle: TaskHandle | str, timeout: float | None = 30.0, *, preserve: bool = False
    ) -> Any:
        """What the task's ``run`` returned (see :meth:`outcome` for errors and waiting)."""
        return self.outcome(handle, timeout, preserve=preserve).value

    def health(self) -> dict[str, Any]:
        """``{"ok", "backend", "pending", "detail"}`` for ``/api/v1/health``; never raises."""
        try:
            pending = int(self.huey.pending_count())
        except Exception as exc:  # health reports the failure instead of raising it
            return {"ok": False, "backend": self.backend, "pending": None,
                    "detail": f"{self.detail}: {type(exc).__name__}: {exc}"}
        return {"ok": True, "backend": self.backend, "pending": pending, "detail": self.detail}

    def close(self) -> None:
        """Release the storage's connections."""
        self.huey.storage.close()


def task_failed(task_id: str, metadata: dict[str, Any]) -> TaskFailed:
    """The :class:`TaskFailed` for a failure huey stored (``metadata``)."""
    kind = metadata.get("kind", "")
    plugin = metadata.get("plugin", "")
    message = metadata.get("message") or metadata.get("error") or "unknown error"
    where = f"task {kind or task_id}" + (f" (plugin {plugin})" if plugin else "")
    error_type = metadata.get("type", "")
    return TaskFailed(
        f"{where} failed: {error_type + ': ' if error_type else ''}{message}",
        task_id=task_id,
        kind=kind,
        plugin=plugin,
        error_type=error_type,
        error_code=metadata.get("code", ""),
        log=metadata.get("log", ()),
        traceback=metadata.get("traceback", ""),
    )


def make_queue(settings: Settings, registry: Registry, runtime: Runtime | None = None) -> BhypeQueue:
    """Build the huey queue ``settings.queue`` describes and bind every registered task kind and
    periodic job to it.

    Backends: ``auto`` (Redis when ``core.redis_url`` is set, else SQLite), ``sqlite`` (file at
    ``queue.sqlite_path`` or ``<core.data_dir>/queue.sqlite3``), ``redis`` (on
    ``core.redis_url``), ``memory`` (runs each task at once in this process; unit tests only).

    :param runtime: the runtime tasks run with in this process (see :class:`BhypeQueue`).
    :raises ConfigError: ``redis`` without ``core.redis_url``, or an unusable SQLite path.
    :raises PluginError: a task kind or periodic job cannot be bound (names the plugin).
    """
    queue_settings = settings.queue
    backend = queue_settings.backend
    if backend == "auto":
        backend = "redis" if settings.core.redis_url else "sqlite"
    common: dict[str, Any] = {"name": queue_settings.name, "serializer": JsonSerializer(), "utc": False}
    # utc=False: crontab fields of periodic jobs mean the host's local time, as in cron(8).
    if backend == "memory":
        huey = BhypeHuey(immediate=True, storage_class=MemoryStorage, **common)
        detail = f"in-memory queue {queue_settings.name} (tasks run at once)"
    elif backend == "sqlite":
        path = sqlite_path(settings)
        huey = BhypeHuey(storage_class=SqliteStorage, filename=str(path), **common)
        detail = f"sqlite {path} queue {queue_settings.name}"
    else:
        url = settings.core.redis_url
        if not url:
            raise ConfigError("queue.backend is 'redis' but core.redis_url is empty")
        huey = BhypeHuey(storage_class=PriorityRedisStorage, connection_pool=redis_pool(url),
                         blocking=True, read_timeout=1, **common)
        detail = f"redis {redacted_url(url)} queue {queue_settings.name}"
    return BhypeQueue(huey, backend, registry, detail, runtime)


def sqlite_path(settings: Settings) -> Path:
    """Where the SQLite queue lives; its directory is created and the file made 0600 before
    SQLite opens it (task messages carry arguments; see :mod:`bhype_core.private_files`)."""
    path = settings.queue.sqlite_path or settings.core.data_dir / "queue.sqlite3"
    try:
        ensure_private_sqlite(path)
    except OSError as exc:
        raise ConfigError(f"queue.sqlite_path: cannot create {path}: {exc.strerror}") from None
    return path


def redis_pool(url: str) -> Any:
    """A Redis connection pool for ``url`` with timeouts, so an outage is an error, not a hang."""
    import redis

    try:
        return redis.ConnectionPool.from_url(
            url, socket_connect_timeout=REDIS_CONNECT_TIMEOUT, socket_timeout=REDIS_SOCKET_TIMEOUT
        )
    except ValueError as exc:
        raise ConfigError(f"core.redis_url: {exc}") from None


def redacted_url(url: str) -> str:
    """``url`` without its password, for logs and health output."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = f"{parts.username or ''}:***@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return parts._replace(netloc=netloc).geturl()
