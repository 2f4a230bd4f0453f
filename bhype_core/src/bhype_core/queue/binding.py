"""Binds the registry's task kinds and periodic jobs to one huey instance at start-up."""

from __future__ import annotations

import inspect
import json
import logging
import threading
from typing import TYPE_CHECKING, Any

from huey import crontab
from huey.exceptions import CancelExecution, HueyException, RetryTask

from bhype_core.errors import BhypeError, PluginError, ValidationErrors
from bhype_core.queue.serializer import check_json
from bhype_core.tasks import TaskContext

if TYPE_CHECKING:
    from collections.abc import Callable

    from huey.api import TaskWrapper

    from bhype_core.queue.huey_factory import BhypeQueue
    from bhype_core.registry import PeriodicJob, TaskKind

log = logging.getLogger("bhype.queue")

# huey names a task "<function module>.<task name>". Fixed pseudo-modules make the name depend
# only on the registered name, so the API process and the worker agree on "bhype.task.core.ping"
# whatever module the binding code lives in; task kinds and periodic jobs never collide.
TASK_MODULE = "bhype.task"
PERIODIC_MODULE = "bhype.periodic"

# huey's own control-flow exceptions (retry, cancel, lock held, timeout) pass through untouched.
HUEY_CONTROL = (HueyException, CancelExecution, RetryTask)


class TaskRunFailed(Exception):
    """Raised by a bound task when its ``run`` raised: carries what the caller needs to know.

    Internal to the queue: huey stores :meth:`details` as the task's error result, and
    :meth:`BhypeQueue.outcome` turns it into :class:`bhype_core.errors.TaskFailed`.
    """

    def __init__(self, kind: str, plugin: str, exc: BaseException, log_lines: list[dict[str, Any]]) -> None:
        self.kind = kind
        self.plugin = plugin
        self.error_type = type(exc).__name__
        self.message = exc.message if isinstance(exc, BhypeError) else str(exc)
        self.code = exc.code if isinstance(exc, BhypeError) else ""
        self.fields = exc.to_dict()["error"].get("fields", []) if isinstance(exc, ValidationErrors) else []
        self.log_lines = log_lines
        super().__init__(f"task {kind} (plugin {plugin}) failed: {self.error_type}: {self.message}")

    def details(self) -> dict[str, Any]:
        """JSON data describing the failure (merged into huey's error result)."""
        return {
            "error": str(self),
            "message": self.message,
            "type": self.error_type,
            "code": self.code,
            "fields": self.fields,
            "kind": self.kind,
            "plugin": self.plugin,
            "log": self.log_lines,
        }


def bind_tasks(queue: BhypeQueue) -> dict[str, TaskWrapper]:
    """Register every task kind of ``queue.registry`` as a huey task named after the kind."""
    wrappers = {}
    for kind in queue.registry.tasks:
        function = _task_function(queue, kind, queue.registry.tasks.plugin_of(kind.name))
        function.__module__ = TASK_MODULE
        wrappers[kind.name] = queue.huey.task(name=kind.name, context=True)(function)
    return wrappers


def bind_periodic_jobs(queue: BhypeQueue) -> dict[str, TaskWrapper]:
    """Register every periodic job of ``queue.registry`` as a huey periodic task.

    :raises PluginError: a job's schedule is not a valid crontab (names job and plugin).
    """
    wrappers = {}
    catalog = queue.registry.periodic_jobs
    for job in catalog:
        plugin = catalog.plugin_of(job.name)
        schedule = job_schedule(job, plugin)
        function = _periodic_function(queue, job, plugin)
        function.__module__ = PERIODIC_MODULE
        wrappers[job.name] = queue.huey.periodic_task(schedule, name=job.name, context=True)(function)
    return wrappers


def job_schedule(job: PeriodicJob, plugin: str) -> Callable[[Any], bool]:
    """huey's crontab test for ``job`` (strict: a malformed field is an error, not ignored)."""
    try:
        return crontab(job.minute, job.hour, job.day, job.month, job.day_of_week, strict=True)
    except ValueError as exc:
        raise PluginError(
            f"periodic job {job.name!r} of plugin {plugin!r} has a bad schedule: {exc}"
        ) from None


def _task_function(queue: BhypeQueue, kind: TaskKind, plugin: str) -> Callable[..., Any]:
    # Closes over the queue (and through it the runtime of the process that runs the task):
    # no module-level state, so two queues in one process stay independent.
    def run_task(arguments: dict[str, Any], user: str | None = None, task: Any = None) -> dict[str, Any]:
        from bhype_core.taskqueue.authz import check_run

        reporter = queue.reporter_factory()
        runtime = queue.require_runtime()
        context = TaskContext(runtime, task.id, kind.name, user, reporter)
        log.info("task %s %s started (user %s)", kind.name, task.id, user)

        def checked_run() -> Any:
            # Whoever wrote this message to the queue is trusted no more than a Task row's
            # writer: the task queue worker's check (user None is the system itself).
            check_run(runtime, kind, plugin, user, arguments)
            return kind.run(context, **arguments)

        value = _run(context, plugin, checked_run)
        try:
            check_json(value, f"the result of task {kind.name}")
        except TypeError as exc:
            raise TaskRunFailed(kind.name, plugin, exc, _lines(reporter)) from exc
        log.info("task %s %s succeeded", kind.name, task.id)
        return {"value": value, **_report(reporter)}

    return run_task


def _periodic_function(queue: BhypeQueue, job: PeriodicJob, plugin: str) -> Callable[..., Any]:
    # A run that outlasts its period (a slow pool, a thousand snapshots to prune) must not be
    # joined by the next one in another worker thread of this process: that one is skipped.
    running = threading.Lock()

    def run_job(task: Any = None) -> None:
        if not running.acquire(blocking=False):
            log.warning("periodic job %s %s skipped: its previous run is still going", job.name, task.id)
            return
        try:
            context = TaskContext(queue.require_runtime(), task.id, job.name, None, queue.reporter_factory())
            log.info("periodic job %s %s started", job.name, task.id)
            _run(context, plugin, lambda: job.run(context))
        finally:
            running.release()

    return run_job


def _run(context: TaskContext, plugin: str, call: Callable[[], Any]) -> Any:
    """Run ``call`` with host commands attributed to the task; wrap its failure."""
    from bhype_core.host.audit import acting_as

    try:
        with acting_as(user=context.user, task_id=context.task_id):
            return call()
    except HUEY_CONTROL:
        raise
    except Exception as exc:
        raise TaskRunFailed(context.kind, plugin, exc, _lines(context.reporter)) from exc


def _report(reporter: Any) -> dict[str, Any]:
    to_dict = getattr(reporter, "to_dict", None)
    return to_dict() if to_dict else {"log": [], "progress": None}


def _lines(reporter: Any) -> list[dict[str, Any]]:
    return _report(reporter)["log"]


def validate_submission(
    queue: BhypeQueue, kind: str, arguments: Any, user: str | None, task_id: str | None
) -> None:
    """Check a submission before anything is queued.

    :raises ValidationErrors: every problem, with its field path (``kind``,
        ``arguments.<name>``, ``user``, ``task_id``).
    """
    errors = ValidationErrors()
    if kind not in queue.tasks:
        known = ", ".join(sorted(queue.tasks)) or "none"
        errors.add("kind", f"unknown task kind {kind!r} (known: {known})")
    if not isinstance(arguments, dict):
        errors.add("arguments", f"must be an object of named arguments, not {type(arguments).__name__}")
    else:
        try:
            # Both: check_json refuses non-string keys (json.dumps would silently stringify
            # them), json.dumps refuses dates (check_json would tag them): plain JSON only,
            # as the Task row stores it.
            check_json(arguments, "the value")
            json.dumps(arguments, allow_nan=False)
        except (TypeError, ValueError) as exc:
            errors.add("arguments", str(exc))
        if kind in queue.tasks:
            _check_signature(queue.registry.tasks[kind], arguments, errors)
    if user is not None and (not isinstance(user, str) or not user):
        errors.add("user", "must be a non-empty user name or None")
    if task_id is not None and (not isinstance(task_id, str) or not task_id.strip()):
        errors.add("task_id", "must be a non-empty string or None")
    errors.raise_if_any()


def _check_signature(kind: TaskKind, arguments: dict[str, Any], errors: ValidationErrors) -> None:
    """Name every argument ``kind.run`` would refuse: unknown ones and missing required ones."""
    try:
        parameters = list(inspect.signature(kind.run).parameters.values())[1:]  # skip context
    except (TypeError, ValueError):  # no introspectable signature: let the task decide
        return
    by_name = {
        p.name: p for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters)
    for name in arguments:
        if name not in by_name and not takes_any:
            errors.add(f"arguments.{name}", f"task kind {kind.name} takes no argument {name!r}")
    for name, parameter in by_name.items():
        if parameter.default is parameter.empty and name not in arguments:
            errors.add(f"arguments.{name}", f"required by task kind {kind.name}")
