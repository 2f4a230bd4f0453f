"""The core's one huey instance (the transport of Task row ids), built from settings."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from huey import Huey
from huey.storage import MemoryStorage, PriorityRedisStorage, SqliteStorage

from bhype_core.errors import ConfigError
from bhype_core.hosts.settings import queue_name
from bhype_core.private_files import ensure_private_sqlite
from bhype_core.tasks import scheduled
from bhype_core.tasks.doorbell import Doorbell
from bhype_core.tasks.serializer import JsonSerializer
from bhype_core.tasks.validation import JobSchedule, bind_periodic_jobs

if TYPE_CHECKING:
    from huey.api import TaskWrapper

    from bhype_core.config import Settings
    from bhype_core.registry import Registry
    from bhype_core.runtime import Runtime
    from bhype_core.tasks.scheduler import Scheduler

log = logging.getLogger("bhype.queue")

# Redis client timeouts: a dead or hung server must turn into an error, never a hang. The read
# timeout must exceed huey's blocking dequeue (read_timeout=1 s below).
REDIS_CONNECT_TIMEOUT = 5.0
REDIS_SOCKET_TIMEOUT = 10.0
# Seconds a nudge sent by this process counts as pending: a nudge taken by another process's
# thread never says so here, and the next submission after this time sends one again.
NUDGE_PENDING = 0.5
# huey's key of a task's revoke flag (``Task.revoke_id``: ``r:<task id>``).
REVOKE_PREFIX = "r:"


class BhypeHuey(Huey):
    """huey as bHype's transport: it carries only Task row ids (``bhype.scheduler.execute``)
    and scheduler nudges; the Task rows are the truth. ``queue`` leads back to the
    :class:`BhypeQueue` (the consumer's scheduler thread submits periodic runs through it)."""

    queue: BhypeQueue | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Rung after each message this process enqueues: its idle worker threads look at once.
        self.doorbell = Doorbell()
        # Set while this process's consumer stops: its threads take no further task themselves.
        self.stopping = threading.Event()

    # bHype never revokes a huey message: a task is cancelled on its Task row, and a message
    # whose token no longer matches is skipped. huey still asks the storage before every message
    # (a Redis HMGET) and clears the flag after it (an HDEL): two round trips per task, one of
    # them before the task can start (issue 15).
    def is_revoked(self, task: Any, timestamp: Any = None, peek: bool = True) -> bool:
        return False

    def delete(self, key: str) -> Any:
        if key.startswith(REVOKE_PREFIX):
            return False  # the revoke flag huey clears after each message: never set
        return super().delete(key)


class BhypeQueue:
    """The task queue transport of one process: a huey instance carrying the ids of started
    Task rows to worker threads, and scheduler nudges.

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
        settings: Settings | None = None,
    ) -> None:
        self.huey = huey
        huey.queue = self
        self.backend = backend
        self.registry = registry
        self.detail = detail
        self.runtime = runtime
        # Each periodic job's schedule, by job name (resolved with the settings and checked
        # here, at start-up).
        self.periodic: dict[str, JobSchedule] = bind_periodic_jobs(registry, settings)
        self.scheduled: dict[str, TaskWrapper] = scheduled.bind_scheduled(self)
        self._scheduler: Scheduler | None = None
        self._scheduler_lock = threading.Lock()
        self._nudge_lock = threading.Lock()
        self._nudge_sent = -NUDGE_PENDING  # monotonic time of the nudge not yet taken here
        # Other group hosts' queues on the shared Redis, by host: nudges for their tasks go
        # there (issue 22), so their workers start them at once instead of on their timer.
        self._base_name = settings.queue.name if settings is not None else huey.name
        self._host_storages: dict[str, Any] = {}

    @property
    def scheduler(self) -> Scheduler:
        """This process's task scheduler (built on first use; :meth:`Scheduler.start` runs it).

        Only a process that consumes the queue needs it: it owns the worker's lease, which
        proves to other workers that the tasks it runs are alive.
        """
        with self._scheduler_lock:
            if self._scheduler is None:
                from bhype_core.tasks.scheduler import Scheduler

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

    def pending_starts(self) -> set[str] | None:
        """The dispatch tokens of the start messages waiting in this host's queue, or ``None``
        when the queue runs tasks at once (nothing waits). Raises what the storage raises."""
        if self.huey.immediate:
            return None
        tokens = set()
        for message in self.huey.pending():
            args = message.args or ()
            if len(args) == 2 and isinstance(args[1], str):  # execute(task_id, token); a nudge has none
                tokens.add(args[1])
        return tokens

    def nudge(self, host: str | None = None) -> bool:
        """Ask the workers' schedulers for a pass now (a task was submitted or cancelled).

        Best effort: the Task row is already stored and schedulers also look on a timer, so a
        storage failure here is logged, not raised. Returns whether the nudge was sent.

        :param host: the group host whose worker runs the task: on the shared Redis its own
            queue gets the nudge (another host's worker never reads this host's queue).
        """
        if host and self.backend == "redis" and f"{self._base_name}.{host}" != self.huey.name:
            return self._nudge_host(host)
        # Also in the process of the in-process worker: the message (and its doorbell) brings a
        # worker thread, which claims the task and runs it itself in one commit; waking the
        # scheduler thread instead would add a queue message and a second commit (issue 15).
        # There, one nudge not yet taken by a thread here stands for any number of submissions.
        running = self.running_scheduler
        if running is not None:
            with self._nudge_lock:
                now = time.monotonic()
                if now - self._nudge_sent < NUDGE_PENDING:
                    return True
                self._nudge_sent = now
        try:
            scheduled.send(self, scheduled.NUDGE)
        except Exception as exc:  # the row is safe; the scheduler's timer picks it up
            self.nudge_taken()
            if running is not None:
                running.wake()
                return True
            log.warning("could not nudge the task scheduler: %s: %s", type(exc).__name__, exc)
            return False
        return True

    def _nudge_host(self, host: str) -> bool:
        """Put a nudge on group host ``host``'s queue (same Redis, queue ``<queue.name>.<host>``)."""
        storage = self._host_storages.get(host)
        if storage is None:
            storage = self._host_storages[host] = PriorityRedisStorage(
                name=f"{self._base_name}.{host}", connection_pool=self.huey.storage.pool)
        message = self.scheduled[scheduled.NUDGE].s()
        try:
            storage.enqueue(self.huey.serialize_task(message), message.priority)
        except Exception as exc:  # the row is safe; that host's scheduler timer picks it up
            log.warning("could not nudge host %s's task scheduler: %s: %s", host, type(exc).__name__, exc)
            return False
        return True

    def nudge_taken(self) -> None:
        """A worker thread of this process took a nudge and is about to look at the queue:
        the next submission must send a new one."""
        with self._nudge_lock:
            self._nudge_sent = -NUDGE_PENDING

    def require_runtime(self) -> Runtime:
        """The runtime tasks run with here; an error if this process only enqueues."""
        if self.runtime is None:
            raise ConfigError("this queue has no runtime to run tasks with; build it through Runtime.queue")
        return self.runtime

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


def make_queue(settings: Settings, registry: Registry, runtime: Runtime | None = None) -> BhypeQueue:
    """Build the huey queue ``settings.queue`` describes and check every periodic job's
    schedule.

    Backends: ``auto`` (Redis when ``core.redis_url`` is set, else SQLite), ``sqlite`` (file at
    ``queue.sqlite_path`` or ``<core.data_dir>/queue.sqlite3``), ``redis`` (on
    ``core.redis_url``), ``memory`` (runs each task at once in this process; unit tests only).

    :param runtime: the runtime tasks run with in this process (see :class:`BhypeQueue`).
    :raises ConfigError: ``redis`` without ``core.redis_url``, or an unusable SQLite path.
    :raises PluginError: a periodic job has a bad schedule or an unknown kind (names the plugin).
    """
    queue_settings = settings.queue
    backend = queue_settings.backend
    if backend == "auto":
        backend = "redis" if settings.core.redis_url else "sqlite"
    # On a shared Redis each group host has its own queue (issue 22, bhype_core.hosts).
    common: dict[str, Any] = {"name": queue_name(settings, backend), "serializer": JsonSerializer(), "utc": False}
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
        detail = f"redis {redacted_url(url)} queue {common['name']}"
    return BhypeQueue(huey, backend, registry, detail, runtime, settings)


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
