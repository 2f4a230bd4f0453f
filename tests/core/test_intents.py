"""The undo journal (issue 11): intents recorded before side effects, replayed by recovery for
interrupted tasks only, newest first, logged on the task and marked on its row; forgotten for
tasks that ended; a failing undo is kept and retried a bounded number of times. On SQLite and
MariaDB, with a plugin registering its own undo action through ``bhype_register_undo_actions``."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import update
from sqlmodel import Session, col, select

import bhype_core.builtins.models as core_models
import bhype_core.builtins.tasks as core_tasks
from bhype_core.db.intent_models import TaskIntent
from bhype_core.db.migrate import upgrade
from bhype_core.db.task_models import Task
from bhype_core.errors import ValidationErrors
from bhype_core.hookspecs import hookimpl
from bhype_core.plugins import make_plugin_manager
from bhype_core.registry import TaskKind, UndoAction
from bhype_core.runtime import build_runtime
from bhype_core.tasks import MemoryReporter, TaskContext, intents, service, store
from bhype_core.testing import make_settings


class FilePlugin:
    """Makes files in a task; its undo action removes one (or fails when told to)."""

    @hookimpl
    def bhype_register_undo_actions(self, register):
        register(UndoAction("test.remove_file", remove_file, "remove a file a test task made"))

    @hookimpl
    def bhype_register_tasks(self, register):
        register(TaskKind("test.make", run=lambda context: None, role="operator"))


def remove_file(context, path: str, fail: bool = False) -> str | None:
    if fail:
        raise OSError(f"cannot remove {path}")
    target = Path(path)
    if not target.exists():
        return None
    target.unlink()
    return f"file {target.name}"


@pytest.fixture
def runtime(tmp_path: Path, database_url: str):
    settings = make_settings(tmp_path / "data", core={"database_url": database_url})
    pm = make_plugin_manager(load_entrypoints=False, plugins=[
        ("core_models", core_models), ("core_tasks", core_tasks), ("files", FilePlugin()),
    ])
    runtime = build_runtime(settings, pm)
    upgrade(runtime)
    yield runtime
    runtime.engine.dispose()


def task_in_state(runtime, state: str) -> Task:
    """A Task row of kind ``test.make`` in ``state`` (as a worker would have left it)."""
    task = submit(runtime, "alice", "test.make", {})
    with runtime.engine.begin() as connection:
        connection.execute(update(Task).where(col(Task.id) == task.id).values(state=state))
    return store.get_task(runtime.engine, task.id)


def submit(runtime, user: str, kind: str, arguments: dict) -> Task:
    """Submit as ``user`` (``root`` as an admin, anyone else as an operator)."""
    from bhype_core.auth.principal import Principal

    return service.submit(runtime, Principal(user, "admin" if user == "root" else "operator"), kind, arguments)


def context_of(runtime, task: Task) -> TaskContext:
    return TaskContext(runtime, task.id, task.kind, task.owner, MemoryReporter())


def journal(runtime) -> list[tuple[str, str]]:
    with Session(runtime.engine) as db:
        return [(row.task_id, row.description) for row in db.exec(select(TaskIntent).order_by(col(TaskIntent.id)))]


def test_an_intent_names_a_registered_action_and_json_arguments(runtime):
    context = context_of(runtime, task_in_state(runtime, "running"))
    with pytest.raises(ValidationErrors, match="no undo action named 'nope'"):
        context.intent("nope", "something")
    with pytest.raises(Exception, match="JSON"):
        context.intent("test.remove_file", "a file", path=object())
    assert journal(runtime) == []
    assert "test.remove_file" in runtime.registry.undo_actions


def test_settle_undoes_interrupted_tasks_newest_first_and_forgets_ended_ones(runtime, tmp_path):
    files = [tmp_path / name for name in ("one", "two", "kept", "live")]
    states = ("interrupted", "succeeded", "running")
    interrupted, succeeded, running = (task_in_state(runtime, state) for state in states)
    for task, made in ((interrupted, files[0]), (interrupted, files[1]), (succeeded, files[2]), (running, files[3])):
        context_of(runtime, task).intent("test.remove_file", f"file {made.name}", path=str(made))
        made.write_text("made")  # the side effect, after its intent

    done = intents.settle(runtime, host="elsewhere-is-not-checked-for-rows-without-a-worker-host")
    assert [(replay.task_id, replay.undone) for replay in done] == [(interrupted.id, ["file two", "file one"])]
    assert [path.exists() for path in files] == [False, False, True, True]  # ended tasks keep theirs
    assert journal(runtime) == [(running.id, "file live")]  # still running: left alone

    row = store.get_task(runtime.engine, interrupted.id)
    assert row.state == "interrupted" and row.progress_message == "interrupted: its changes were undone"
    assert row.error["detail"]["undone"] == ["file two", "file one"]
    assert [line.message for line in store.read_log(runtime.engine, interrupted.id)] == [
        "undone after the interruption: file two", "undone after the interruption: file one",
    ]
    event = intents.cleaned_up_event(row, done[0])
    assert event.kind == "task.cleaned_up" and event.user == "alice" and "file two; file one" in event.message
    assert intents.settle(runtime, host="any") == []  # nothing left to do: idempotent


def test_a_failing_undo_is_reported_kept_and_retried_at_most_a_few_times(runtime, tmp_path):
    task = task_in_state(runtime, "interrupted")
    context_of(runtime, task).intent("test.remove_file", "stuck file", path=str(tmp_path / "x"), fail=True)
    outcomes = [intents.settle(runtime, host="h") for _ in range(intents.MAX_ATTEMPTS + 1)]
    assert [len(outcome) for outcome in outcomes] == [1] * intents.MAX_ATTEMPTS + [0]
    assert outcomes[0][0].failed == [f"stuck file: OSError: cannot remove {tmp_path / 'x'}"]
    with Session(runtime.engine) as db:
        (left,) = db.exec(select(TaskIntent)).all()
    assert left.attempts == intents.MAX_ATTEMPTS and "cannot remove" in left.error
    row = store.get_task(runtime.engine, task.id)
    assert row.progress_message == "interrupted: some changes could not be undone (see the log)"
    assert row.error["detail"]["undo_failed"][0].startswith("stuck file: OSError")


def test_tasks_of_another_hosts_worker_are_left_to_that_host(runtime, tmp_path):
    task = task_in_state(runtime, "interrupted")
    with runtime.engine.begin() as connection:
        connection.execute(update(Task).where(col(Task.id) == task.id).values(worker_host="other-host"))
    made = tmp_path / "theirs"
    context_of(runtime, task).intent("test.remove_file", "their file", path=str(made))
    made.write_text("x")
    assert intents.settle(runtime, host="this-host") == [] and made.exists()
    assert [replay.undone for replay in intents.settle(runtime, host="other-host")] == [["file theirs"]]


def test_the_executor_forgets_the_journal_of_a_task_that_ends(runtime):
    from bhype_core.tasks.executor import _forget_intents

    task = task_in_state(runtime, "running")
    context_of(runtime, task).intent("test.remove_file", "a file", path="/nonexistent/bhype-test")
    _forget_intents(runtime.engine, task.id)
    assert journal(runtime) == []
