"""The core's huey queue in this process: backends, submission checks, task context, errors,
periodic job binding, the in-process worker and the JSON wire format."""

from __future__ import annotations

import datetime
import json
import os
import signal
import sqlite3
import threading
from pathlib import Path

import pytest
from huey.registry import Message
from huey.utils import Error

import bhype_core.builtins.tasks as core_tasks
from bhype_core.errors import ConfigError, PluginError, TaskFailed, ValidationErrors
from bhype_core.hookspecs import hookimpl
from bhype_core.host.audit import current_actor
from bhype_core.plugins import make_plugin_manager
from bhype_core.queue import make_queue
from bhype_core.queue.serializer import JsonSerializer
from bhype_core.registry import PeriodicJob, Registry, TaskKind
from bhype_core.runtime import build_runtime
from bhype_core.tasks import TaskContext
from bhype_core.testing.queue import queue_config, settings_from
from bhype_core.worker import build_consumer, start_in_process_worker


class ExtraTasks:
    """A fake plugin with task kinds that exercise the binding."""

    @hookimpl
    def bhype_register_tasks(self, register):
        # Anyone may run them, the system too: what is tested here is the queue, not who may.
        register(TaskKind(name="test.add", run=lambda context, a, b=1: a + b, role="operator", system=True))
        register(TaskKind(name="test.actor", run=actor_task, role="operator", system=True))
        register(TaskKind(name="test.unjsonable", run=lambda context: object(), role="operator", system=True))
        register(TaskKind(name="test.admin", run=ran_admin_task))  # declares nothing: admins only


ADMIN_RUNS: list[str | None] = []


def ran_admin_task(context: TaskContext) -> None:
    ADMIN_RUNS.append(context.user)


def actor_task(context: TaskContext) -> dict:
    """Who the host command audit trail would name right now."""
    actor = current_actor()
    context.progress(50, "half way")
    return {"user": actor.user, "task_id": actor.task_id}


def runtime_for(tmp_path: Path, backend: str, *plugins: tuple[str, object], **config):
    raw = queue_config(tmp_path / "data", backend, **config)
    pm = make_plugin_manager(load_entrypoints=False, plugins=[("core_tasks", core_tasks), *plugins])
    return build_runtime(settings_from(raw), pm)


def empty_registry() -> Registry:
    return Registry.from_plugins(make_plugin_manager(load_entrypoints=False))


def test_auto_backend_without_redis_is_sqlite_in_the_data_dir(tmp_path):
    queue = runtime_for(tmp_path, "auto").queue
    assert queue.backend == "sqlite"
    assert (tmp_path / "data" / "queue.sqlite3").is_file()
    assert queue.health() == {
        "ok": True, "backend": "sqlite", "pending": 0,
        "detail": f"sqlite {tmp_path / 'data' / 'queue.sqlite3'} queue bhype",
    }


def test_sqlite_path_setting_is_used_and_its_directory_created(tmp_path):
    raw = queue_config(tmp_path / "data", "sqlite")
    raw["queue"]["sqlite_path"] = str(tmp_path / "elsewhere" / "deep" / "q.db")
    queue = make_queue(settings_from(raw), empty_registry())
    assert queue.backend == "sqlite"
    assert (tmp_path / "elsewhere" / "deep" / "q.db").is_file()


@pytest.mark.redis
def test_auto_backend_with_redis_url_is_redis(tmp_path, redis_url, redis_prefix):
    queue = runtime_for(tmp_path, "auto", redis_url=redis_url, name=redis_prefix).queue
    assert queue.backend == "redis"
    health = queue.health()
    assert health["ok"] is True and health["pending"] == 0
    assert redis_prefix in health["detail"]


def test_redis_backend_without_url_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="core.redis_url"):
        make_queue(settings_from(queue_config(tmp_path, "redis")), empty_registry())


def test_health_of_unreachable_redis_reports_instead_of_raising(tmp_path):
    # Port 1 on loopback: nothing listens, the connection is refused at once.
    queue = runtime_for(tmp_path, "redis", redis_url="redis://:s3cret@127.0.0.1:1/0").queue
    health = queue.health()
    assert health["ok"] is False and health["backend"] == "redis" and health["pending"] is None
    assert "Connection" in health["detail"]
    assert "s3cret" not in health["detail"] and "127.0.0.1:1" in health["detail"]


def test_memory_backend_runs_ping_at_once_with_its_context(tmp_path):
    queue = runtime_for(tmp_path, "memory").queue
    handle = queue.enqueue("core.ping", {"echo": {"n": [1, 2]}}, user="alice", task_id="t-123")
    assert handle.id == "t-123" and handle.kind == "core.ping" and handle.user == "alice"
    outcome = queue.outcome(handle)
    assert outcome.value["pong"] is True
    assert outcome.value["pid"] == os.getpid()  # memory runs in this very process
    assert outcome.value["echo"] == {"n": [1, 2]}
    assert (outcome.value["user"], outcome.value["task_id"]) == ("alice", "t-123")
    assert [line["message"] for line in outcome.log] == ["ping from alice"]
    assert outcome.progress == {"percent": 100.0, "message": "pong"}


def test_unknown_kind_is_refused_naming_it_and_nothing_is_queued(tmp_path):
    queue = runtime_for(tmp_path, "sqlite").queue
    with pytest.raises(ValidationErrors) as caught:
        queue.enqueue("core.pong", {})
    assert [(e.path, e.message) for e in caught.value.errors] == [
        ("kind", "unknown task kind 'core.pong' (known: core.ping)")
    ]
    assert queue.health()["pending"] == 0


def test_arguments_are_checked_against_the_kinds_run(tmp_path):
    queue = runtime_for(tmp_path, "sqlite", ("extra", ExtraTasks())).queue
    with pytest.raises(ValidationErrors) as caught:
        queue.enqueue("test.add", {"c": 3})
    assert {e.path for e in caught.value.errors} == {"arguments.a", "arguments.c"}
    with pytest.raises(ValidationErrors) as caught:
        queue.enqueue("test.add", {"a": datetime.date(2024, 1, 1)})
    assert [e.path for e in caught.value.errors] == ["arguments"]
    assert "not JSON" in caught.value.message
    with pytest.raises(ValidationErrors, match="arguments: must be an object"):
        queue.enqueue("test.add", [1, 2])
    with pytest.raises(ValidationErrors, match="user: must be a non-empty"):
        queue.enqueue("test.add", {"a": 1}, user="")
    assert queue.health()["pending"] == 0
    queue.enqueue("test.add", {"a": 1})
    assert queue.health()["pending"] == 1


def test_failing_task_error_comes_back_with_kind_plugin_and_log(tmp_path):
    queue = runtime_for(tmp_path, "memory").queue
    handle = queue.enqueue("core.ping", {"fail": "disk on fire"}, user="bob")
    with pytest.raises(TaskFailed) as caught:
        queue.result(handle)
    failure = caught.value
    assert failure.message == "task core.ping (plugin core_tasks) failed: PingFailed: disk on fire"
    assert (failure.kind, failure.plugin, failure.error_type, failure.task_id) == (
        "core.ping", "core_tasks", "PingFailed", handle.id)
    assert failure.error_code == "ping_failed"
    assert [line["message"] for line in failure.log] == ["ping from bob"]
    assert "PingFailed: disk on fire" in failure.traceback


def test_validation_error_inside_a_task_names_the_field(tmp_path):
    queue = runtime_for(tmp_path, "memory").queue
    with pytest.raises(TaskFailed, match=r"ValidationErrors: sleep: must be a number of seconds"):
        queue.result(queue.enqueue("core.ping", {"sleep": -1}))


def test_a_message_queued_behind_the_task_queues_back_is_checked_like_a_row(tmp_path):
    # The direct huey path: a message naming an admin kind for a user who is no admin now
    # (no such account here) fails as forbidden and runs nothing; so does one for the system
    # (no user) of a kind the system does not submit.
    queue = runtime_for(tmp_path, "memory", ("extra", ExtraTasks())).queue
    with pytest.raises(TaskFailed, match="task kind test.admin is for admins only; 'bht_nobody' is operator"):
        queue.result(queue.enqueue("test.admin", user="bht_nobody"))
    with pytest.raises(TaskFailed, match="Forbidden: task kind test.admin is not one bHype submits itself"):
        queue.result(queue.enqueue("test.admin"))
    assert ADMIN_RUNS == []


def test_a_result_that_is_not_json_fails_the_task(tmp_path):
    queue = runtime_for(tmp_path, "memory", ("extra", ExtraTasks())).queue
    with pytest.raises(TaskFailed, match="the result of task test.unjsonable is not JSON data"):
        queue.result(queue.enqueue("test.unjsonable"))


def test_host_commands_in_a_task_are_attributed_to_its_user_and_id(tmp_path):
    queue = runtime_for(tmp_path, "memory", ("extra", ExtraTasks())).queue
    outcome = queue.outcome(queue.enqueue("test.actor", user="carol", task_id="t-9"))
    assert outcome.value == {"user": "carol", "task_id": "t-9"}
    assert outcome.progress == {"percent": 50.0, "message": "half way"}
    assert current_actor().user is None  # nothing leaks out of the task


def test_progress_must_be_a_percentage(tmp_path):
    context = TaskContext(runtime_for(tmp_path, "memory"), "t-1", "core.ping")
    for bad in (-1, 100.5, float("nan"), True, "50"):
        with pytest.raises(ValidationErrors) as caught:
            context.progress(bad)
        assert caught.value.errors[0].path == "percent"
    context.progress(0)
    context.progress(100, "done")
    assert context.reporter.latest.to_dict() == {"percent": 100.0, "message": "done"}


def test_queued_tasks_are_json_on_the_wire_not_pickles(tmp_path):
    queue = runtime_for(tmp_path, "sqlite").queue
    handle = queue.enqueue("core.ping", {"echo": "x"}, user="dave")
    with sqlite3.connect(tmp_path / "data" / "queue.sqlite3") as db:
        (data,) = db.execute("select data from task where queue = 'bhype'").fetchone()
    message = json.loads(bytes(data))["fields"]
    assert message["id"] == handle.id
    assert message["name"] == "bhype.task.core.ping"
    assert message["kwargs"] == {"arguments": {"echo": "x"}, "user": "dave"}


def test_serializer_round_trips_huey_messages_and_errors():
    serializer = JsonSerializer()
    eta = datetime.datetime(2024, 5, 1, 2, 30, 15, 123)
    message = Message("id-1", "bhype.task.core.ping", eta, 0, 0, None, (1, "a"), {"user": None},
                      None, None, datetime.timedelta(seconds=90), None, None, None, 0)
    assert serializer.deserialize(serializer.serialize(message)) == message
    error = Error({"error": "boom", "log": [{"message": "x"}]})
    assert serializer.deserialize(serializer.serialize(error)) == error
    with pytest.raises(TypeError, match="reserved key"):
        serializer.serialize({"__bhype__": "message"})
    with pytest.raises(TypeError, match="not JSON data"):
        serializer.serialize({"x": {1, 2}})


def test_separately_built_queues_agree_and_the_in_process_worker_runs_tasks(tmp_path):
    # The API process and the worker each build their own runtime from the same settings.
    api = runtime_for(tmp_path, "sqlite")
    worker_runtime = runtime_for(tmp_path, "sqlite")
    handle = api.queue.enqueue("core.ping", {"echo": 7}, user="erin")
    handlers_before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    worker = start_in_process_worker(worker_runtime, workers=1)
    try:
        outcome = api.queue.outcome(handle, timeout=60)
    finally:
        assert worker.stop(timeout=30) is True
    assert not worker.alive
    assert (outcome.value["echo"], outcome.value["user"], outcome.value["pid"]) == (7, "erin", os.getpid())
    # The consumer ran in a thread, so the host process's signal handling is untouched.
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers_before


def test_memory_queue_needs_no_worker(tmp_path):
    with pytest.raises(ConfigError, match="needs no worker"):
        build_consumer(runtime_for(tmp_path, "memory"))


class Periodic:
    def __init__(self) -> None:
        self.runs: list[tuple[str, str | None, str]] = []

    @hookimpl
    def bhype_register_periodic_jobs(self, register):
        register(PeriodicJob(name="test.tick", run=self.tick, minute="*/15", hour="2", day_of_week="1-5"))

    def tick(self, context: TaskContext) -> None:
        self.runs.append((context.kind, context.user, context.task_id))


def test_periodic_job_is_bound_with_its_schedule_and_runs_with_a_context(tmp_path):
    plugin = Periodic()
    queue = runtime_for(tmp_path, "sqlite", ("periodic", plugin)).queue
    assert set(queue.periodic) == {"test.tick"}
    (task,) = queue.huey._registry.periodic_tasks
    assert task.name == "test.tick"
    # 2024-05-01 is a Wednesday, 2024-05-04 a Saturday.
    at = datetime.datetime
    assert task.validate_datetime(at(2024, 5, 1, 2, 30)) is True
    assert task.validate_datetime(at(2024, 5, 1, 2, 0)) is True
    assert task.validate_datetime(at(2024, 5, 1, 2, 31)) is False
    assert task.validate_datetime(at(2024, 5, 1, 3, 30)) is False
    assert task.validate_datetime(at(2024, 5, 4, 2, 30)) is False
    # What the consumer's scheduler does each minute: read the due jobs and run them.
    due = queue.huey.read_periodic(at(2024, 5, 1, 2, 45))
    assert [t.name for t in due] == ["test.tick"]
    queue.huey.execute(due[0])
    assert plugin.runs == [("test.tick", None, due[0].id)]
    assert queue.huey.read_periodic(at(2024, 5, 1, 2, 46)) == []


def test_periodic_job_with_a_bad_schedule_names_job_and_plugin(tmp_path):
    class BadSchedule:
        @hookimpl
        def bhype_register_periodic_jobs(self, register):
            register(PeriodicJob(name="test.bad", run=lambda context: None, minute="61"))

    with pytest.raises(PluginError, match="periodic job 'test.bad' of plugin 'bad' has a bad schedule"):
        _ = runtime_for(tmp_path, "sqlite", ("bad", BadSchedule())).queue


class StartupJobs:
    def __init__(self) -> None:
        self.runs: list[str] = []

    @hookimpl
    def bhype_register_periodic_jobs(self, register):
        register(PeriodicJob(name="test.at-start", run=self.record, minute="0", hour="3", run_at_start=True))
        register(PeriodicJob(name="test.scheduled-only", run=self.record, minute="0", hour="3"))

    def record(self, context: TaskContext) -> None:
        self.runs.append(context.kind)


def test_jobs_flagged_run_at_start_are_queued_once_when_a_worker_starts(tmp_path):
    from bhype_core.worker import enqueue_start_jobs

    plugin = StartupJobs()
    runtime = runtime_for(tmp_path, "sqlite", ("startup", plugin))
    assert enqueue_start_jobs(runtime) == ["test.at-start"]
    queue = runtime.queue
    (queued,) = [queue.huey.dequeue() for _ in range(queue.huey.pending_count())]
    assert queued.name == "test.at-start"
    queue.huey.execute(queued)
    assert plugin.runs == ["test.at-start"]


class SlowJob:
    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()
        self.runs = 0
        self.fail_next = False

    @hookimpl
    def bhype_register_periodic_jobs(self, register):
        register(PeriodicJob(name="test.slow", run=self.run))

    def run(self, context: TaskContext) -> None:
        self.runs += 1
        self.started.set()
        if self.fail_next:
            self.fail_next = False
            raise RuntimeError("pool busy")
        assert self.release.wait(30), "never released"


def test_a_periodic_run_still_going_makes_the_next_one_skip(tmp_path, caplog):
    plugin = SlowJob()
    queue = runtime_for(tmp_path, "sqlite", ("slow", plugin)).queue
    due = lambda minute: queue.huey.read_periodic(datetime.datetime(2024, 5, 1, 2, minute))[0]  # noqa: E731
    first = threading.Thread(target=queue.huey.execute, args=(due(0),))
    first.start()
    assert plugin.started.wait(30)
    queue.huey.execute(due(1))  # the next minute's run, in another worker thread: returns at once
    assert plugin.runs == 1
    assert "periodic job test.slow" in caplog.text and "skipped: its previous run is still going" in caplog.text
    plugin.release.set()
    first.join(30)

    plugin.fail_next = True  # a failing run frees the job too
    queue.huey.execute(due(2))  # huey logs the failure; periodic runs keep no result
    assert "RuntimeError: pool busy" in caplog.text
    queue.huey.execute(due(3))
    assert plugin.runs == 3
