"""The per-user task queue in one process, on SQLite and MariaDB: submit, scheduler passes,
execution, cancel, retry, ownership, crash recovery and racing schedulers. Queue messages are
run by hand (``drain``) so every step is deterministic; worker processes are in
test_task_worker.py."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select, update
from sqlmodel import col

import bhype_core.builtins.models as core_models
import bhype_core.builtins.tasks as core_tasks
from bhype_core.api.principal import Principal
from bhype_core.db.migrate import upgrade
from bhype_core.db.task_models import CANCELLED, FAILED, INTERRUPTED, QUEUED, RUNNING, SUCCEEDED, Task, TaskLog
from bhype_core.errors import Conflict, Forbidden, NotFound, PluginError, ValidationErrors
from bhype_core.hookspecs import hookimpl
from bhype_core.host.audit import current_actor
from bhype_core.hosts.settings import local_host_name
from bhype_core.plugins import make_plugin_manager
from bhype_core.registry import TaskKind
from bhype_core.runtime import build_runtime
from bhype_core.tasks import dispatch, liveness, service, store
from bhype_core.tasks.executor import execute
from bhype_core.tasks.plan import Limits, waiting_for_lock, waiting_for_user_limit
from bhype_core.tasks.store import WorkerIdentity
from bhype_core.testing.queue import queue_config, settings_from

ALICE = Principal("alice", "operator")
BOB = Principal("bob", "operator")
ADMIN = Principal("root", "admin")
WAIT_LIMIT = 30.0  # seconds; generous for a loaded machine, never a timing assertion


class Kinds:
    """Fake plugin: task kinds that expose what the worker gives them, and an event recorder."""

    def __init__(self) -> None:
        self.events: list = []
        self.release = threading.Event()
        self.entered = threading.Event()

    @hookimpl
    def bhype_register_tasks(self, register):
        # Operators may run them all: what is tested here is the queue, not who may submit.
        register(TaskKind(name="test.actor", run=self.actor, role="operator"))
        register(TaskKind(name="test.wait", run=self.wait, role="operator",
                          locks=lambda arguments: [f"vm:{arguments['vm']}"]))
        register(TaskKind(name="test.thread", run=self.thread, role="operator"))
        register(TaskKind(name="test.badlocks", run=lambda context: None, role="operator",
                          locks=lambda arguments: ["no type"]))
        register(TaskKind(name="test.brokenlocks", run=lambda context: None, role="operator",
                          locks=lambda arguments: 1 / 0))

    @hookimpl
    def bhype_notify(self, event):
        self.events.append(event)

    def actor(self, context) -> dict:
        actor = current_actor()
        context.log("looking")
        context.progress(40, "half")
        return {"user": actor.user, "task_id": actor.task_id}

    def thread(self, context) -> dict:
        # Context variables do not cross into new threads: context.acting_as() carries them.
        seen: dict = {}

        def work() -> None:
            seen["bare"] = current_actor().task_id
            with context.acting_as():
                seen["inside"] = [current_actor().user, current_actor().task_id]

        worker = threading.Thread(target=work)
        worker.start()
        worker.join()
        context.log("careful", level="warning")
        try:
            context.log("x", level="loud")
        except ValidationErrors as exc:
            seen["bad level"] = exc.errors[0].path
        seen["cancel requested"] = context.cancel_requested()
        return seen

    def wait(self, context, vm: int) -> str:
        self.entered.set()
        deadline = time.monotonic() + WAIT_LIMIT
        while not self.release.is_set() and time.monotonic() < deadline:
            context.check_cancelled()
            time.sleep(0.01)
        return "released"


@pytest.fixture
def kinds() -> Kinds:
    return Kinds()


@pytest.fixture
def runtime(tmp_path: Path, database_url: str, kinds: Kinds):
    raw = queue_config(tmp_path / "data", "sqlite")
    raw["core"]["database_url"] = database_url
    raw["tasks"] = {"per_user_limit": 2, "max_running": 3}
    plugins = [("core_models", core_models), ("core_tasks", core_tasks), ("kinds", kinds)]
    built = build_runtime(settings_from(raw), make_plugin_manager(load_entrypoints=False, plugins=plugins))
    upgrade(built)
    yield built
    built.queue.scheduler.lease.release()
    built.engine.dispose()


def drain(runtime) -> int:
    """Run every queued huey message in this thread; returns how many ran."""
    count = 0
    while (message := runtime.queue.huey.dequeue()) is not None:
        runtime.queue.huey.execute(message)
        count += 1
    return count


def row(runtime, task_id: str) -> Task:
    task = store.get_task(runtime.engine, task_id)
    assert task is not None
    return task


def log_lines(runtime, task_id: str) -> list[tuple[int, str, str]]:
    return [(line.seq, line.level, line.message) for line in store.read_log(runtime.engine, task_id)]


def test_submit_stores_a_queued_row_with_locks_and_target(runtime):
    task = service.submit(runtime, ALICE, "core.ping", {"echo": 1, "locks": ["vm:3", "pool:tank", "vm:3"]})
    stored = row(runtime, task.id)
    assert (stored.owner, stored.kind, stored.state, stored.progress) == ("alice", "core.ping", QUEUED, 0.0)
    assert stored.arguments == {"echo": 1, "locks": ["vm:3", "pool:tank", "vm:3"]}
    assert stored.locks == ["vm:3", "pool:tank"]  # duplicates dropped, order kept
    assert stored.target == "vm:3"
    assert stored.created.tzinfo is not None and stored.started is None


def test_bad_submissions_name_the_field_and_store_nothing(runtime):
    cases = [
        (("core.nope", {}), "kind", ValidationErrors),
        (("core.ping", {"volume": 3}), "arguments.volume", ValidationErrors),
        (("core.ping", {"locks": "vm:1"}), "arguments.locks", ValidationErrors),
        (("core.ping", {"echo": float("nan")}), "arguments", ValidationErrors),
        (("test.badlocks", {}), "bad locks ['no type']", PluginError),
        (("test.brokenlocks", {}), "(plugin 'kinds') could not name its locks", PluginError),
    ]
    for (kind, arguments), where, error in cases:
        with pytest.raises(error) as caught:
            service.submit(runtime, ALICE, kind, arguments)
        if error is ValidationErrors:
            assert where in [field.path for field in caught.value.errors], caught.value
        else:
            assert where in caught.value.message
    assert store.list_tasks(runtime.engine) == []


def test_a_pass_starts_within_limits_and_says_why_the_rest_wait(runtime):
    a1 = service.submit(runtime, ALICE, "core.ping", {"locks": ["vm:1"]})
    a2 = service.submit(runtime, ALICE, "core.ping", {})
    a3 = service.submit(runtime, ALICE, "core.ping", {})
    b1 = service.submit(runtime, BOB, "core.ping", {"locks": ["vm:1"]})
    c1 = service.submit(runtime, Principal("carol", "operator"), "core.ping", {})
    scheduler = runtime.queue.scheduler

    started = scheduler.run_pass()
    # 3 slots, round-robin in submission order of each user's first task: alice, bob, carol;
    # bob's task waits for alice's lock, so alice gets the third slot.
    assert started == [a1.id, c1.id, a2.id]
    assert {row(runtime, t).state for t in started} == {RUNNING}
    assert row(runtime, b1.id).progress_message == waiting_for_lock("vm:1", a1.id)
    assert row(runtime, a3.id).progress_message == waiting_for_user_limit(2)
    assert row(runtime, a1.id).worker_id == scheduler.identity.id

    # Each task that ends starts the next ones from the same thread: the queue empties.
    assert drain(runtime) >= 5
    assert scheduler.run_pass() == []
    assert all(row(runtime, t.id).state == SUCCEEDED for t in (a1, a2, a3, b1, c1))
    # When a1 ended (first), one slot was free: bob was never served, alice was, so b1 went first.
    assert row(runtime, b1.id).started < row(runtime, a3.id).started
    assert row(runtime, b1.id).started >= row(runtime, a1.id).finished  # vm:1 was a1's until then


def test_execution_records_result_log_progress_and_the_actor(runtime):
    task = service.submit(runtime, ALICE, "test.actor", {})
    runtime.queue.scheduler.run_pass()
    drain(runtime)
    done = row(runtime, task.id)
    assert done.state == SUCCEEDED
    assert done.result == {"user": "alice", "task_id": task.id}  # audit records name both
    assert (done.progress, done.progress_message) == (100.0, "done")
    assert done.started <= done.picked_up <= done.finished
    assert done.worker_pid is not None and done.worker_host
    assert log_lines(runtime, task.id) == [(1, "info", "looking")]


def test_threads_of_a_task_act_as_it_through_the_context(runtime):
    task = service.submit(runtime, ALICE, "test.thread", {})
    runtime.queue.scheduler.run_pass()
    drain(runtime)
    done = row(runtime, task.id)
    assert done.result == {"bare": None, "inside": ["alice", task.id], "bad level": "level",
                           "cancel requested": False}
    assert log_lines(runtime, task.id) == [(1, "warning", "careful")]


def test_a_failure_is_recorded_with_code_message_detail_and_an_event(runtime, kinds):
    task = service.submit(runtime, ALICE, "core.ping", {"fail": "no such pool"})
    runtime.queue.scheduler.run_pass()
    drain(runtime)
    done = row(runtime, task.id)
    assert done.state == FAILED
    assert done.error == {
        "code": "ping_failed", "message": "no such pool",
        "detail": {"type": "PingFailed", "kind": "core.ping", "plugin": "core_tasks"},
    }
    assert log_lines(runtime, task.id)[-1] == (2, "error", "failed: PingFailed: no such pool")
    [event] = [event for event in kinds.events if event.kind == "task.failed"]
    assert (event.user, event.severity, event.data["task_id"]) == ("alice", "error", task.id)


def test_cancel_a_queued_task_it_never_runs(runtime):
    blocker = service.submit(runtime, BOB, "core.ping", {"locks": ["vm:1"]})
    runtime.queue.scheduler.run_pass()  # bob holds vm:1 (not run yet)
    waiting = service.submit(runtime, ALICE, "core.ping", {"locks": ["vm:1"]})
    later = service.submit(runtime, ALICE, "core.ping", {})
    runtime.queue.scheduler.run_pass()
    assert row(runtime, later.id).state == QUEUED  # behind alice's waiting head

    cancelled = service.cancel(runtime, ALICE, waiting.id)
    assert (cancelled.state, cancelled.cancel_requested) == (CANCELLED, True)
    assert cancelled.error["code"] == "cancelled" and cancelled.finished is not None
    assert log_lines(runtime, waiting.id) == [(1, "warning", "cancelled by alice before it started")]
    assert runtime.queue.scheduler.run_pass() == [later.id]  # no longer held up
    drain(runtime)
    assert row(runtime, waiting.id).state == CANCELLED and row(runtime, blocker.id).state == SUCCEEDED
    with pytest.raises(Conflict, match="has already ended"):
        service.cancel(runtime, ALICE, waiting.id)


def test_cancel_a_running_task_at_its_next_safe_point(runtime, kinds):
    task = service.submit(runtime, ALICE, "test.wait", {"vm": 7})
    runtime.queue.scheduler.run_pass()
    worker = threading.Thread(target=drain, args=(runtime,))
    worker.start()
    try:
        assert kinds.entered.wait(WAIT_LIMIT)
        assert row(runtime, task.id).state == RUNNING
        requested = service.cancel(runtime, ALICE, task.id)
        # The row is read back after the request: the task may have honoured it already.
        assert requested.cancel_requested and requested.state in (RUNNING, CANCELLED)
        worker.join(WAIT_LIMIT)
    finally:
        kinds.release.set()
        worker.join()
    done = row(runtime, task.id)
    assert done.state == CANCELLED and done.error["code"] == "cancelled"
    assert [line[2] for line in log_lines(runtime, task.id)] == [
        "cancel requested by alice", f"cancelled: task {task.id} was cancelled",
    ]


def test_cancel_between_start_and_pickup_ends_cancelled_without_running(runtime, kinds):
    task = service.submit(runtime, ALICE, "test.wait", {"vm": 1})
    runtime.queue.scheduler.run_pass()
    service.cancel(runtime, ALICE, task.id)
    drain(runtime)
    assert row(runtime, task.id).state == CANCELLED
    assert not kinds.entered.is_set()


def test_retry_makes_a_new_task_owned_by_the_caller(runtime):
    failed = service.submit(runtime, ALICE, "core.ping", {"fail": "x"})
    runtime.queue.scheduler.run_pass()
    drain(runtime)
    again = service.retry(runtime, ADMIN, failed.id)
    assert (again.retry_of, again.owner, again.state) == (failed.id, "root", QUEUED)
    assert (again.kind, again.arguments) == ("core.ping", {"fail": "x"})
    with pytest.raises(Conflict, match="only failed, cancelled, interrupted"):
        service.retry(runtime, ADMIN, again.id)  # still queued
    with pytest.raises(NotFound):
        service.retry(runtime, BOB, failed.id)


def test_operators_see_only_their_own_tasks_and_admins_see_all(runtime):
    mine = service.submit(runtime, ALICE, "core.ping", {})
    theirs = service.submit(runtime, BOB, "test.actor", {})
    assert [t.id for t in service.list_visible(runtime, ALICE)] == [mine.id]
    assert [t.id for t in service.list_visible(runtime, ADMIN)] == [theirs.id, mine.id]
    assert [t.id for t in service.list_visible(runtime, ADMIN, user="bob")] == [theirs.id]
    assert [t.id for t in service.list_visible(runtime, ADMIN, kind="core.ping", state=QUEUED)] == [mine.id]
    assert service.list_visible(runtime, ADMIN, state=SUCCEEDED) == []
    # Another user's task is "not found", word for word like an unknown id.
    for action in (service.visible_task, service.show, service.cancel, service.retry):
        with pytest.raises(NotFound) as other:
            action(runtime, ALICE, theirs.id)
        with pytest.raises(NotFound) as unknown:
            action(runtime, ALICE, "no-such-id")
        assert other.value.message.replace(theirs.id, "ID") == unknown.value.message.replace("no-such-id", "ID")
    with pytest.raises(Forbidden):
        service.list_visible(runtime, ALICE, user="bob")
    with pytest.raises(ValidationErrors) as caught:
        service.list_visible(runtime, ALICE, state="sleeping", limit=0)
    assert [e.path for e in caught.value.errors] == ["state", "limit"]


def test_a_stale_start_message_is_skipped(runtime):
    task = service.submit(runtime, ALICE, "test.actor", {})
    runtime.queue.scheduler.run_pass()
    me = runtime.queue.scheduler.identity
    assert execute(runtime, me, task.id, "not-the-token") is None
    assert row(runtime, task.id).picked_up is None
    drain(runtime)
    assert row(runtime, task.id).state == SUCCEEDED
    token = row(runtime, task.id).dispatch_token
    assert execute(runtime, me, task.id, token) is None  # already ran under that token


def claim_as(runtime, worker: WorkerIdentity) -> list[tuple[str, str]]:
    return dispatch.dispatch_pass(runtime.engine, Limits(2, 10), worker)


def test_recovery_requeues_unstarted_and_interrupts_running_tasks_of_dead_workers(runtime, kinds):
    scheduler = runtime.queue.scheduler
    me = scheduler.identity
    directory = scheduler.lease.directory
    dead = WorkerIdentity(id="0" * 32, host=me.host, pid=999999)  # holds no lease: gone
    elsewhere = WorkerIdentity(id="1" * 32, host="another-host", pid=1)
    alive = liveness.WorkerLease(directory).acquire()
    try:
        never = service.submit(runtime, ALICE, "core.ping", {"locks": ["vm:1"]})
        [(never_id, _)] = claim_as(runtime, dead)
        running = service.submit(runtime, BOB, "core.ping", {"locks": ["vm:2"]})
        [(running_id, token)] = claim_as(runtime, dead)
        assert store.pick_up(runtime.engine, running_id, token, dead) is not None
        # A task of another group host (issue 22): only that host's workers claim it.
        remote = service.submit(runtime, Principal("carol", "operator"), "core.ping", {}, host="another-host")
        [(remote_id, remote_token)] = claim_as(runtime, elsewhere)
        store.pick_up(runtime.engine, remote_id, remote_token, elsewhere)
        living = service.submit(runtime, Principal("dave", "operator"), "core.ping", {})
        [(living_id, living_token)] = claim_as(runtime, alive.identity)
        store.pick_up(runtime.engine, living_id, living_token, alive.identity)
        waiting = service.submit(runtime, Principal("erin", "operator"), "core.ping", {"locks": ["vm:2"]})
        scheduler.settings = scheduler.settings.model_copy(update={"max_running": 10})

        scheduler._ready, scheduler._last_sweep = True, 0.0
        started = scheduler.run_pass()  # sweeps first, then starts
        assert never_id == never.id and running_id == running.id and remote_id == remote.id
        assert row(runtime, running.id).state == INTERRUPTED
        assert row(runtime, running.id).error["code"] == "interrupted"
        assert log_lines(runtime, running.id)[-1][1:] == ("error", "interrupted: the worker running it stopped")
        # Requeued (nothing of it ran) and started again by this worker; vm:2 is free again.
        assert set(started) == {never.id, waiting.id}
        assert row(runtime, never.id).worker_id == me.id
        assert row(runtime, remote.id).state == RUNNING  # another host's worker: not judged here
        assert row(runtime, living.id).state == RUNNING  # its worker holds its lease
        [event] = [e for e in kinds.events if e.kind == "task.interrupted"]
        assert (event.user, event.data["task_id"], event.subject) == ("bob", running.id, "vm:2")
        # The dead worker cannot write any more: its token no longer matches.
        assert not store.set_progress(runtime.engine, running.id, token, 50, "late")
        assert not store.finish(runtime.engine, running.id, token, SUCCEEDED)
    finally:
        alive.release()
    # Once its lease is gone the living worker's task is released too.
    scheduler._last_sweep = 0.0
    scheduler.run_pass()
    assert row(runtime, living.id).state == INTERRUPTED


def test_stopping_a_worker_releases_its_own_tasks(runtime):
    scheduler = runtime.queue.scheduler.start()
    try:
        deadline = time.monotonic() + WAIT_LIMIT
        while not scheduler._ready and time.monotonic() < deadline:
            time.sleep(0.02)
        task = service.submit(runtime, ALICE, "core.ping", {})
        while row(runtime, task.id).state == QUEUED and time.monotonic() < deadline:
            time.sleep(0.02)
        assert row(runtime, task.id).state == RUNNING  # started, its message not yet run
    finally:
        scheduler.stop()
    assert row(runtime, task.id).state == QUEUED  # back in the queue for the next worker
    assert not scheduler.lease.path.exists()


def test_racing_schedulers_in_separate_processes_never_double_start(runtime, database_url):
    from bhype_core.db.engine import make_engine

    for n in range(24):
        service.submit(runtime, Principal(f"user{n % 4}", "operator"), "core.ping", {"locks": [f"vm:{n % 5}"]})
    engines = [make_engine(database_url) for _ in range(3)]
    # Three workers of this host (a worker claims only its own host's tasks, issue 22).
    workers = [WorkerIdentity(id=f"{n}" * 32, host=local_host_name(runtime), pid=n) for n in range(3)]
    claims: list[list[tuple[str, str]]] = [[] for _ in engines]
    errors: list[BaseException] = []

    def race(index: int) -> None:
        try:
            for _ in range(4):
                claims[index] += dispatch.dispatch_pass(engines[index], Limits(per_user=2, total=6), workers[index])
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=race, args=(n,)) for n in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    for engine in engines:
        engine.dispose()
    assert errors == []
    everything = [task_id for mine in claims for task_id, _ in mine]
    assert len(everything) == len(set(everything))  # nothing claimed twice
    running = store.list_tasks(runtime.engine, state=RUNNING)
    assert {t.id for t in running} == set(everything)
    assert len(running) <= 6
    per_user: dict[str, int] = {}
    for task in running:
        per_user[task.owner] = per_user.get(task.owner, 0) + 1
    assert max(per_user.values()) <= 2
    held = [lock for task in running for lock in task.locks]
    assert len(held) == len(set(held))
    for task in running:  # the claiming worker is recorded on the row
        assert (task.worker_id, task.worker_pid) in {(w.id, w.pid) for w in workers}


def test_log_lines_from_concurrent_writers_get_distinct_sequence_numbers(runtime):
    task = service.submit(runtime, ALICE, "core.ping", {})

    def write(n: int) -> None:
        for i in range(10):
            store.append_log(runtime.engine, task.id, f"writer {n} line {i}")

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    seqs = [line[0] for line in log_lines(runtime, task.id)]
    assert seqs == list(range(1, 41))
    with runtime.engine.connect() as connection:
        count = connection.execute(select(func.count()).select_from(TaskLog).where(col(TaskLog.task_id) == task.id))
        assert count.scalar() == 40


def test_tasks_wait_until_the_tables_exist(tmp_path, kinds):
    raw = queue_config(tmp_path / "data", "sqlite")
    plugins = [("core_models", core_models), ("core_tasks", core_tasks)]
    bare = build_runtime(settings_from(raw), make_plugin_manager(load_entrypoints=False, plugins=plugins))
    scheduler = bare.queue.scheduler
    assert scheduler.run_pass() == [] and not scheduler._ready
    upgrade(bare)
    task = service.submit(bare, ALICE, "core.ping", {})
    assert scheduler.run_pass() == [task.id]
    scheduler.lease.release()
    bare.engine.dispose()


def test_a_progress_write_after_the_task_ended_is_dropped(runtime):
    task = service.submit(runtime, ALICE, "core.ping", {})
    [(task_id, token)] = dispatch.dispatch_pass(runtime.engine, Limits(2, 2), runtime.queue.scheduler.identity)
    with runtime.engine.begin() as connection:
        connection.execute(update(Task).where(col(Task.id) == task_id).values(state=CANCELLED))
    assert not store.set_progress(runtime.engine, task.id, token, 10, "too late")
    assert row(runtime, task.id).progress_message == dispatch.STARTING
