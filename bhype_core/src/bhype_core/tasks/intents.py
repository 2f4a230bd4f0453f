"""The undo journal: intents written before side effects, replayed when a task's worker dies.

A multi-step task (``vm.create``, ``switch.create``, ``iso.import``, ``zfs.clone``) calls
:meth:`TaskContext.intent <bhype_core.tasks.TaskContext.intent>` before each step that changes
the host, naming a registered :class:`~bhype_core.registry.UndoAction` and its arguments. The
row is committed before the step runs, so whatever a ``kill -9`` leaves half made is known.

- A task that ends (succeeded, failed, cancelled) has its rows forgotten: success keeps what it
  made, and a failure's own rollback (``vm.undo.Undo``) already reversed it.
- A task that became ``interrupted`` has its rows replayed by :func:`settle` (the worker's
  recovery sweep), newest first: each action's line goes to the task's log, the task's error
  detail lists what was undone, and a ``task.cleaned_up`` event says so.

Resumable tasks (a persisted step, resumed after a restart) need no undo: :func:`settle` skips
the kinds that declare ``resumable``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from bhype_core import failpoints
from bhype_core.db.intent_models import ACTION_LENGTH, DESCRIPTION_LENGTH, TaskIntent
from bhype_core.db.models import mark_commands_interrupted
from bhype_core.db.task_models import FINAL_STATES, INTERRUPTED, Task
from bhype_core.errors import NotFound, ValidationErrors
from bhype_core.events import Event
from bhype_core.tasks.serializer import check_json
from bhype_core.tasks.store import append_log

if TYPE_CHECKING:
    from sqlalchemy.engine import Engine

    from bhype_core.runtime import Runtime
    from bhype_core.tasks import LogLine, Progress, TaskContext

log = logging.getLogger("bhype.tasks")

MAX_ATTEMPTS = 3  # an undo failing this often is left to an admin (its error stays on the row)


def record(context: TaskContext, action: str, description: str, arguments: dict[str, Any]) -> int:
    """Commit one intent of ``context``'s task (before the side effect it describes).

    :raises ValidationErrors: ``action`` is not a registered undo action, or the arguments
        are not JSON (a programming error: nothing was changed yet).
    :returns: the intent's id.
    """
    if action not in context.runtime.registry.undo_actions:
        raise ValidationErrors([("action", f"no undo action named {action!r} is registered")])
    check_json(arguments, f"the arguments of undo action {action}")
    context.intents_recorded += 1  # before the commit: a journal row must never go unforgotten
    row = TaskIntent(task_id=context.task_id, action=action[:ACTION_LENGTH],
                     description=description[:DESCRIPTION_LENGTH], arguments=dict(arguments))
    with Session(context.runtime.engine) as db:
        db.add(row)
        db.commit()
        assert row.id is not None
        intent_id = row.id
    failpoints.reached(f"intent:{action}")  # crash-safety tests die here (after the commit)
    return intent_id


def pending(engine: Engine, task_id: str) -> list[TaskIntent]:
    """The intents still recorded for ``task_id``, oldest first."""
    with Session(engine) as db:
        query = select(TaskIntent).where(col(TaskIntent.task_id) == task_id).order_by(col(TaskIntent.id))
        return list(db.exec(query).all())


def forget(engine: Engine, task_id: str) -> int:
    """Drop the intents of ``task_id`` (it ended and handled its own undo); returns how many."""
    with engine.begin() as connection:
        return connection.execute(delete(TaskIntent).where(col(TaskIntent.task_id) == task_id)).rowcount


class JournalReporter:
    """Where an undo action's context writes: the interrupted task's log (progress is dropped:
    the task is over)."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def log(self, context: TaskContext, line: LogLine) -> None:
        append_log(self.engine, context.task_id, line.message, level=line.level)

    def progress(self, context: TaskContext, progress: Progress) -> None:
        pass


@dataclass
class Replay:
    """What replaying one task's journal did."""

    task_id: str
    undone: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def replay(runtime: Runtime, task: Task) -> Replay:
    """Undo what the interrupted ``task`` made: run its intents' actions newest first.

    Each intent is claimed before it runs (its ``attempts`` raised in one guarded update), so
    two workers sweeping at once never run the same one. A done intent is deleted; a failing
    one keeps its error and is tried again at a later sweep, up to :data:`MAX_ATTEMPTS` times.
    """
    from bhype_core.host.audit import acting_as
    from bhype_core.tasks import TaskContext

    outcome = Replay(task.id)
    engine = runtime.engine
    context = TaskContext(runtime, task.id, task.kind, task.owner, JournalReporter(engine))
    for intent in reversed(pending(engine, task.id)):
        if intent.attempts >= MAX_ATTEMPTS:
            continue
        claim = update(TaskIntent).where(col(TaskIntent.id) == intent.id,
                                         col(TaskIntent.attempts) == intent.attempts)
        with engine.begin() as connection:
            if connection.execute(claim.values(attempts=intent.attempts + 1)).rowcount != 1:
                continue  # another worker took it
        action = runtime.registry.undo_actions.get(intent.action)
        try:
            if action is None:
                raise NotFound(f"undo action {intent.action!r} is no longer registered (plugin removed?)")
            with acting_as(user=task.owner, task_id=task.id):
                said = action.run(context, **intent.arguments)
        except NotFound as exc:
            if action is None:
                _failed(engine, context, outcome, intent, str(exc))
                continue
            said = f"{intent.description}: already gone"
        except Exception as exc:
            log.exception("undo of %s for task %s failed", intent.description, task.id)
            _failed(engine, context, outcome, intent, f"{type(exc).__name__}: {exc}")
            continue
        line = f"undone after the interruption: {said or intent.description}"
        context.log(line, level="warning")
        outcome.undone.append(said or intent.description)
        with engine.begin() as connection:
            connection.execute(delete(TaskIntent).where(col(TaskIntent.id) == intent.id))
    return outcome


def _failed(engine: Engine, context: TaskContext, outcome: Replay, intent: TaskIntent, message: str) -> None:
    context.log(f"could not undo {intent.description} after the interruption: {message}", level="error")
    outcome.failed.append(f"{intent.description}: {message}")
    with engine.begin() as connection:
        connection.execute(update(TaskIntent).where(col(TaskIntent.id) == intent.id).values(error=message))


def cleaned_up_event(task: Task, outcome: Replay) -> Event:
    """The ``task.cleaned_up`` event: what recovery undid of an interrupted task."""
    severity = "error" if outcome.failed else "info"
    undone = "; ".join(outcome.undone) or "nothing"
    message = f"task {task.kind} {task.id} was interrupted; recovery undid: {undone}"
    if outcome.failed:
        message += f"; could not undo: {'; '.join(outcome.failed)}"
    return Event(kind="task.cleaned_up", message=message, severity=severity,
                 subject=task.target or f"task:{task.id}", user=task.owner,
                 data={"task_id": task.id, "kind": task.kind, "undone": outcome.undone, "failed": outcome.failed})


def settle(runtime: Runtime, host: str) -> list[Replay]:
    """Replay the journals of interrupted tasks of this host and forget those of ended ones.

    Called by the worker's recovery sweep (after :func:`bhype_core.tasks.recovery.recover`
    has declared dead workers' tasks interrupted), so also at every worker start. Tasks of other
    hosts' workers are left to those hosts (their files are there); running and queued tasks
    are left alone. The interrupted task's row is marked: its error detail lists ``undone`` and
    ``undo_failed``, and its running host commands become ``interrupted`` in the audit trail.

    :returns: one :class:`Replay` per task whose journal ran (the caller sends the events).
    """
    engine = runtime.engine
    with engine.connect() as connection:
        task_ids = [row[0] for row in connection.execute(select(col(TaskIntent.task_id)).distinct())]
    done: list[Replay] = []
    for task_id in task_ids:
        with Session(engine) as db:
            task = db.get(Task, task_id)
        if task is None or task.state not in FINAL_STATES:
            continue  # still queued or running, or a context without a Task row (tests, huey)
        if task.state != INTERRUPTED:
            forget(engine, task_id)
            continue
        if task.worker_host not in (None, host):
            continue
        kind = runtime.registry.tasks.get(task.kind)
        if kind is not None and getattr(kind, "resumable", False):
            continue  # resumed from its persisted step instead of undone
        mark_commands_interrupted(engine, task_id)
        outcome = replay(runtime, task)
        if not outcome.undone and not outcome.failed:
            continue
        _mark(engine, task, outcome)
        log.warning("task %s %s: undid %d step(s) of the interrupted run, %d failed",
                    task.kind, task_id, len(outcome.undone), len(outcome.failed))
        done.append(outcome)
    return done


def _mark(engine: Engine, task: Task, outcome: Replay) -> None:
    error = dict(task.error or {})
    detail = dict(error.get("detail") or {})
    detail["undone"] = [*detail.get("undone", []), *outcome.undone]
    detail["undo_failed"] = [*detail.get("undo_failed", []), *outcome.failed]
    error["detail"] = detail
    message = ("interrupted: its changes were undone" if not outcome.failed
               else "interrupted: some changes could not be undone (see the log)")
    with engine.begin() as connection:
        connection.execute(update(Task).where(col(Task.id) == task.id, col(Task.state) == INTERRUPTED)
                           .values(error=error, progress_message=message))
