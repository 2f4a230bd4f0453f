"""Runs one started Task row in a worker thread: pick up, run the kind, record the outcome."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from bhype_core.db.task_models import CANCELLED, FAILED, SUCCEEDED, Task
from bhype_core.errors import BhypeError, PluginError
from bhype_core.events import Event
from bhype_core.host.audit import acting_as
from bhype_core.hosts.versions import unknown_kind
from bhype_core.tasks import Cancelled, TaskContext, authz, intents, outages, store
from bhype_core.tasks.reporter import RowReporter
from bhype_core.tasks.serializer import check_json
from bhype_core.tasks.subtasks import SubTasks, cancel_leftovers
from bhype_core.tasks.system import context_user

if TYPE_CHECKING:
    from collections.abc import Callable

    from bhype_core.runtime import Runtime
    from bhype_core.tasks.store import WorkerIdentity

log = logging.getLogger("bhype.tasks")


def error_data(exc: BaseException, kind: str, plugin: str) -> dict[str, Any]:
    """The ``error`` JSON of a failed task: ``code``, ``message`` and ``detail`` (exception type,
    kind, plugin, and what the error itself adds: invalid fields, a command's argv and stderr)."""
    if isinstance(exc, BhypeError):
        body = exc.to_dict()["error"]
        code, message = body.pop("code"), body.pop("message")
    else:
        body, code, message = {}, "internal_error", str(exc) or type(exc).__name__
    detail = {"type": type(exc).__name__, "kind": kind, "plugin": plugin, **body}
    return {"code": code, "message": message, "detail": detail}


def failed_event(task: Task, error: dict[str, Any]) -> Event:
    """The ``task.failed`` event for ``task``, addressed to its owner."""
    return Event(
        kind="task.failed",
        message=f"task {task.kind} {task.id} failed: {error['message']}",
        severity="error",
        subject=task.target or f"task:{task.id}",
        user=task.owner,
        data={"task_id": task.id, "kind": task.kind, "error": error},
    )


def execute(runtime: Runtime, worker: WorkerIdentity, task_id: str, token: str,
            picked_up: bool = False, row: Task | None = None) -> str | None:
    """Run the task ``task_id`` started under ``token`` in this thread.

    A stale message (the task was requeued, cancelled before it was picked up by recovery, or
    is already running) is skipped. The owner must still be allowed to run the kind
    (:func:`bhype_core.tasks.authz.check_run`: role from the account's groups now, then the
    kind's object check); a refused task ends ``failed`` without running anything. Otherwise
    the kind's ``run`` is called with a
    :class:`TaskContext` whose reporter writes the row, inside :func:`acting_as` so host
    commands are attributed to the owner and the task. Failures become ``failed`` (and a
    ``task.failed`` event); :class:`Cancelled` becomes ``cancelled``.

    ``picked_up``: this thread's own dispatch pass claimed the task and marked it picked up in
    the same statement (no queue message, no second commit); ``row`` is the row as that pass
    claimed it (then it is not read again).

    :returns: the final state written, or ``None`` when the message was stale or recovery
        had already ended the task.
    """
    engine = runtime.engine
    # While the database restarts, the pick-up waits for it (issue 22).
    if picked_up:
        task = row if row is not None else store.get_picked_up(engine, task_id, token)
    else:
        task = outages.pick_up(engine, task_id, token, worker)
    if task is None:
        log.info("task %s: stale start (token %s), skipped", task_id, token)
        return None
    catalog = runtime.registry.tasks
    kind = catalog.get(task.kind)
    plugin = catalog.plugin_of(task.kind) if kind is not None else ""
    reporter = RowReporter(engine, task.id, token, fresh=task.checkpoint is None and not task.cancel_requested)
    children = SubTasks(runtime, worker, task)
    context = TaskContext(runtime, task.id, task.kind, context_user(task.owner), reporter,
                          resume_state=task.checkpoint, subtasks=children)

    def journal_possible() -> bool:
        # This run recorded intents, or an earlier run of the task may have (a resumed or
        # resumable task): only then does the end delete the journal.
        return context.intents_recorded > 0 or task.checkpoint is not None or bool(kind and kind.resumable)

    def leftovers() -> None:
        # Only a task that submitted children (in this run, or a run it resumes) can leave some.
        if children.submitted or task.checkpoint is not None:
            cancel_leftovers(runtime, task)

    log.info("task %s %s started (user %s)", task.kind, task.id, task.owner)
    if task.checkpoint is not None:
        context.log(f"resuming from step {task.checkpoint.get('step')!r} after its worker stopped")
    try:
        if kind is None:
            raise PluginError(unknown_kind(runtime, task.kind))
        if task.cancel_requested:
            raise Cancelled(f"task {task.id} was cancelled before it started")
        # The API process wrote this row; the worker (root) checks who may run it again,
        # against the owner's groups now, before anything of it runs.
        authz.check_run(runtime, kind, plugin, task.owner, task.arguments)
        with acting_as(user=task.owner, task_id=task.id):
            value = kind.run(context, **task.arguments)
        check_json(value, f"the result of task {task.kind}")
    except Cancelled as exc:
        _quietly(context, leftovers)
        context.log(f"cancelled: {exc.message}", level="warning")
        return _finish(engine, reporter, task, token, CANCELLED, journal_possible(),
                       error=error_data(exc, task.kind, plugin), message="cancelled")
    except Exception as exc:
        _quietly(context, leftovers)
        error = error_data(exc, task.kind, plugin)
        # An error bHype expects is news for the user; anything else is a bug worth a traceback.
        log.warning("task %s %s failed: %s", task.kind, task.id, error["message"],
                    exc_info=not isinstance(exc, BhypeError))
        _log_quietly(context, f"failed: {error['detail']['type']}: {error['message']}")
        state = _finish(engine, reporter, task, token, FAILED, journal_possible(), error=error,
                        message=_first_line(error["message"]))
        if state is not None:
            runtime.notify(failed_event(task, error))
        return state
    leftovers()
    log.info("task %s %s succeeded", task.kind, task.id)
    return _finish(engine, reporter, task, token, SUCCEEDED, journal_possible(), result=value, message="done",
                   progress=100.0)


def _finish(engine: Any, reporter: RowReporter, task: Task, token: str, state: str, journal: bool,
            **values: Any) -> str | None:
    # Progress not yet written is dropped: the final row says it all.
    reporter.close()
    try:
        # One commit ends the task and forgets its undo journal, if it may have one (issue 15);
        # while the database restarts, it waits for it (issue 22: the outcome must not be lost).
        def end() -> bool:
            return store.finish(engine, task.id, token, state, forget_intents=journal, **values)

        if outages.retry_while_down(end, f"task {task.id}: ending it"):
            return state
    except Exception:
        log.exception("task %s: ending it with its journal failed; ending it alone", task.id)
        if store.finish(engine, task.id, token, state, **values):
            if journal:
                _forget_intents(engine, task.id)
            return state
    log.warning("task %s ended %s, but recovery had already ended it", task.id, state)
    return None


def _forget_intents(engine: Any, task_id: str) -> None:
    # The task ended on its own: success keeps what it made, a failure rolled itself back.
    # A leftover (this delete failing) is forgotten by the next recovery sweep instead.
    try:
        intents.forget(engine, task_id)
    except Exception:
        log.exception("task %s: could not forget its undo journal", task_id)


def _quietly(context: TaskContext, step: Callable[[], Any]) -> None:
    # On the failure path the database itself may be what failed: still attempt the outcome.
    try:
        step()
    except Exception:
        log.exception("task %s: cleaning up its sub-tasks failed", context.task_id)


def _log_quietly(context: TaskContext, message: str) -> None:
    # The failure itself may be the database: the outcome must still be attempted.
    try:
        context.log(message, level="error")
    except Exception:
        log.exception("task %s: could not write its log", context.task_id)


def _first_line(message: str) -> str:
    return message.strip().splitlines()[0] if message.strip() else "failed"

