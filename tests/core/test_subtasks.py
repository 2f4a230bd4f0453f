"""Sub-tasks and resumable tasks in one process, on SQLite and MariaDB: the parent/child link,
what a parent may wait for, children left behind, orphans, checkpoints and what recovery does
with a resumable task. Real worker processes (kill -9, per-user limits): test_task_flows.py."""

from __future__ import annotations

from pathlib import Path

import pytest

import bhype_core.builtins.models as core_models
import bhype_core.builtins.tasks as core_tasks
from bhype_core.api.principal import Principal
from bhype_core.db.migrate import upgrade
from bhype_core.db.task_models import CANCELLED, FAILED, INTERRUPTED, QUEUED, SUCCEEDED
from bhype_core.errors import BhypeError, ValidationErrors
from bhype_core.hookspecs import hookimpl
from bhype_core.hosts.settings import local_host_name
from bhype_core.plugins import make_plugin_manager
from bhype_core.registry import TaskKind
from bhype_core.runtime import build_runtime
from bhype_core.tasks import SubTask, TaskContext, dispatch, recovery, service, store, subtasks
from bhype_core.tasks.plan import Limits
from bhype_core.tasks.store import WorkerIdentity
from bhype_core.testing.queue import queue_config, settings_from
from bhype_core.testing.tasks import run_queued


class Kinds:
    @hookimpl
    def bhype_register_tasks(self, register):
        register(TaskKind(name="test.forgetful", run=self.forgetful, role="operator"))
        register(TaskKind(name="test.nosy", run=self.nosy, role="operator"))
        register(TaskKind(name="test.nested", run=self.nested, role="operator", locks=lambda arguments: ["vm:n"]))
        register(TaskKind(name="test.checkpointed", run=self.checkpointed, role="operator", resumable=True))
        register(TaskKind(name="test.plain", run=self.checkpointed, role="operator"))
        register(TaskKind(name="test.impatient", run=self.impatient, role="operator"))

    def forgetful(self, context) -> str:
        context.submit("core.ping", {"echo": "never waited for"})
        return "done"

    def nosy(self, context, other: str) -> str:
        context.wait([SubTask(other, "core.ping")])
        return "unreachable"

    def nested(self, context, depth: int) -> list:
        # Each level takes vm:n, which its ancestors hold: allowed for sub-tasks.
        if depth == 0:
            return ["leaf", context.user]
        (outcome,) = context.wait([context.submit("test.nested", {"depth": depth - 1})])
        return [depth, outcome.state, outcome.result]

    def impatient(self, context) -> list:
        (outcome,) = context.wait([context.submit("core.ping", {"locks": ["vm:held"]})], timeout=0.2)
        return [outcome.state, outcome.ok]

    def checkpointed(self, context) -> dict:
        context.checkpoint("copied", {"files": 3})
        return {"resume_state": context.resume_state}


@pytest.fixture
def runtime(tmp_path: Path, database_url: str):
    raw = queue_config(tmp_path / "data", "sqlite")
    raw["core"]["database_url"] = database_url
    raw["tasks"] = {"per_user_limit": 1, "max_running": 1}
    plugins = [("core_models", core_models), ("core_tasks", core_tasks), ("kinds", Kinds())]
    built = build_runtime(settings_from(raw), make_plugin_manager(load_entrypoints=False, plugins=plugins))
    upgrade(built)
    yield built
    built.queue.scheduler.lease.release()
    built.engine.dispose()


def row(runtime, task_id):
    return store.get_task(runtime.engine, task_id)


def test_nested_sub_tasks_take_their_ancestors_locks_in_one_slot(runtime):
    parent = service.submit(runtime, Principal("alice", "operator"), "test.nested", {"depth": 2})
    assert run_queued(runtime) == [parent.id]  # the scheduler started only the parent
    done = row(runtime, parent.id)
    assert done.state == SUCCEEDED
    assert done.result == [2, "succeeded", [1, "succeeded", ["leaf", "alice"]]]
    (child,) = store.children_of(runtime.engine, parent.id)
    (grandchild,) = store.children_of(runtime.engine, child.id)
    assert (child.owner, grandchild.owner, grandchild.locks) == ("alice", "alice", ["vm:n"])


def test_children_never_waited_for_are_cancelled_when_the_parent_ends(runtime):
    parent = service.submit(runtime, Principal("alice", "operator"), "test.forgetful", {})
    run_queued(runtime)
    (child,) = store.children_of(runtime.engine, parent.id)
    assert row(runtime, parent.id).state == SUCCEEDED
    assert row(runtime, child.id).state == CANCELLED
    assert store.read_log(runtime.engine, child.id)[-1].message == (
        f"cancelled: its parent task {parent.id} ended without running it")


def test_a_task_may_wait_only_for_its_own_children(runtime):
    stranger = service.submit(runtime, Principal("bob", "operator"), "core.ping", {})
    nosy = service.submit(runtime, Principal("alice", "operator"), "test.nosy", {"other": stranger.id})
    run_queued(runtime)
    failed = row(runtime, nosy.id)
    assert failed.state == FAILED and failed.error["code"] == "validation_error"
    assert failed.error["detail"]["fields"][0]["path"] == "handles.0"


def test_sub_tasks_need_the_task_queue(runtime):
    context = TaskContext(runtime, "t-1", "test.forgetful")
    with pytest.raises(BhypeError, match="cannot run sub-tasks outside the task queue"):
        context.submit("core.ping")
    with pytest.raises(ValidationErrors) as caught:
        context.checkpoint("", None)
    assert caught.value.errors[0].path == "step"
    with pytest.raises(ValidationErrors):
        context.checkpoint("x", {1, 2})


def test_cancelling_a_parent_cancels_its_queued_children_and_orphans_are_cancelled(runtime):
    parent = service.submit(runtime, Principal("alice", "operator"), "core.ping", {})
    child = service.submit(runtime, Principal("alice", "operator"), "core.ping", {}, parent=parent.id)
    grandchild = service.submit(runtime, Principal("alice", "operator"), "core.ping", {}, parent=child.id)
    service.cancel(runtime, Principal("alice", "operator"), parent.id)
    assert [row(runtime, t.id).state for t in (parent, child, grandchild)] == [CANCELLED] * 3
    # A child whose parent ended some other way (its worker died) is cancelled by the sweep.
    ended = service.submit(runtime, Principal("bob", "operator"), "core.ping", {})
    store.cancel_queued(runtime.engine, ended.id, "gone")
    orphan = service.submit(runtime, Principal("bob", "operator"), "core.ping", {}, parent=ended.id)
    assert subtasks.cancel_orphans(runtime) == [orphan.id]
    assert row(runtime, orphan.id).state == CANCELLED


def test_the_scheduler_never_starts_a_child(runtime):
    parent = service.submit(runtime, Principal("alice", "operator"), "core.ping", {"sleep": 0})
    store.cancel_queued(runtime.engine, parent.id, "held back")
    service.submit(runtime, Principal("carol", "operator"), "core.ping", {}, parent=parent.id)
    me = WorkerIdentity("w" * 32, local_host_name(runtime), 1)  # a worker of this host
    assert dispatch.dispatch_pass(runtime.engine, Limits(5, 5), me) == []


def test_recovery_requeues_a_resumable_task_with_its_checkpoint_and_interrupts_others(runtime):
    dead = WorkerIdentity(id="0" * 32, host=runtime.queue.scheduler.identity.host, pid=999999)
    resumable = service.submit(runtime, Principal("alice", "operator"), "test.checkpointed", {})
    plain = service.submit(runtime, Principal("bob", "operator"), "test.plain", {})
    claimed = dispatch.dispatch_pass(runtime.engine, Limits(5, 5), dead)
    for task_id, token in claimed:
        store.pick_up(runtime.engine, task_id, token, dead)
        store.save_checkpoint(runtime.engine, task_id, token, {"step": "copied", "data": {"files": 3}})
    outcome = recovery.recover(runtime.engine, runtime.queue.scheduler.lease.directory,
                               runtime.queue.scheduler.identity, resumable={"test.checkpointed"})
    assert outcome.requeued == [resumable.id] and [t.id for t in outcome.interrupted] == [plain.id]
    again = row(runtime, resumable.id)
    assert (again.state, again.picked_up, again.checkpoint) == (QUEUED, None, {"step": "copied", "data": {"files": 3}})
    assert row(runtime, plain.id).state == INTERRUPTED
    run_queued(runtime)
    done = row(runtime, resumable.id)
    assert done.state == SUCCEEDED
    assert done.result == {"resume_state": {"step": "copied", "data": {"files": 3}}}
    assert store.read_log(runtime.engine, resumable.id)[-1].message == (
        "resuming from step 'copied' after its worker stopped")


def test_a_wait_with_a_timeout_tells_where_a_blocked_child_is(runtime):
    # A task of another group host (only that host's workers claim it, issue 22) holds vm:held.
    holder = service.submit(runtime, Principal("bob", "operator"), "core.ping", {"locks": ["vm:held"]},
                            host="elsewhere")
    dispatch.dispatch_pass(runtime.engine, Limits(5, 5), WorkerIdentity("e" * 32, "elsewhere", 1))
    assert row(runtime, holder.id).state == "running"
    scheduler = runtime.queue.scheduler
    scheduler.settings = scheduler.settings.model_copy(update={"max_running": 2})  # a slot besides bob's
    parent = service.submit(runtime, Principal("alice", "operator"), "test.impatient", {})
    run_queued(runtime)
    done = row(runtime, parent.id)
    assert (done.state, done.result) == (SUCCEEDED, ["queued", False])
    (child,) = store.children_of(runtime.engine, parent.id)
    assert row(runtime, child.id).state == CANCELLED  # left behind when the parent ended
