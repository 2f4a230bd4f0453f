"""The core's huey queue in this process: backends, health, the JSON wire format (it carries
only Task row ids), the task context, and the in-process worker running Task rows."""

from __future__ import annotations

import datetime
import json
import os
import signal
import sqlite3
import time
from pathlib import Path

import pytest
from huey.registry import Message
from huey.utils import Error

import bhype_core.builtins.models as core_models
import bhype_core.builtins.tasks as core_tasks
from bhype_core.auth.principal import Principal
from bhype_core.db.migrate import upgrade
from bhype_core.db.task_models import FINAL_STATES
from bhype_core.errors import ConfigError, ValidationErrors
from bhype_core.hookspecs import hookimpl
from bhype_core.plugins import make_plugin_manager
from bhype_core.registry import Registry, TaskKind
from bhype_core.runtime import build_runtime
from bhype_core.tasks import TaskContext, service, store
from bhype_core.tasks.serializer import JsonSerializer
from bhype_core.tasks.transport import make_queue
from bhype_core.testing.queue import queue_config, settings_from
from bhype_core.testing.tasks import run_queued
from bhype_core.worker import build_consumer, start_in_process_worker


class ExtraTasks:
    """A fake plugin with a task kind whose result is not JSON data."""

    @hookimpl
    def bhype_register_tasks(self, register):
        register(TaskKind(name="test.unjsonable", run=lambda context: object(), role="operator"))


def runtime_for(tmp_path: Path, backend: str, *plugins: tuple[str, object], **config):
    raw = queue_config(tmp_path / "data", backend, **config)
    pm = make_plugin_manager(load_entrypoints=False, plugins=[("core_tasks", core_tasks), *plugins])
    return build_runtime(settings_from(raw), pm)


def db_runtime_for(tmp_path: Path, *plugins: tuple[str, object]):
    """A SQLite queue and a migrated SQLite database (the task tables)."""
    raw = queue_config(tmp_path / "data", "sqlite")
    raw["core"]["database_url"] = f"sqlite:///{tmp_path / 'data' / 'bhype.sqlite3'}"
    pm = make_plugin_manager(load_entrypoints=False,
                             plugins=[("core_models", core_models), ("core_tasks", core_tasks), *plugins])
    runtime = build_runtime(settings_from(raw), pm)
    upgrade(runtime)
    return runtime


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


def test_the_queue_carries_only_task_row_ids_as_json_not_pickles(tmp_path):
    runtime = db_runtime_for(tmp_path)
    task = service.submit(runtime, Principal("dave", "operator"), "core.ping", {"echo": "x"})
    try:
        ((task_id, token),) = [(task.id, store.get_task(runtime.engine, task.id).dispatch_token)
                               for _ in runtime.queue.scheduler.run_pass()]
    finally:
        runtime.queue.scheduler.lease.release()
    with sqlite3.connect(tmp_path / "data" / "queue.sqlite3") as db:
        payloads = [json.loads(bytes(data))["fields"] for (data,) in db.execute(
            "select data from task where queue = 'bhype'")]
    execute = [message for message in payloads if message["name"] == "bhype.scheduler.execute"]
    assert [message["args"] for message in execute] == [[task_id, token]]  # ids only: the row holds the rest


def test_progress_must_be_a_percentage(tmp_path):
    context = TaskContext(runtime_for(tmp_path, "memory"), "t-1", "core.ping")
    for bad in (-1, 100.5, float("nan"), True, "50"):
        with pytest.raises(ValidationErrors) as caught:
            context.progress(bad)
        assert caught.value.errors[0].path == "percent"
    context.progress(0)
    context.progress(100, "done")
    assert context.reporter.latest.to_dict() == {"percent": 100.0, "message": "done"}


def test_a_result_that_is_not_json_fails_the_task(tmp_path):
    runtime = db_runtime_for(tmp_path, ("extra", ExtraTasks()))
    task = service.submit(runtime, Principal("erin", "operator"), "test.unjsonable", {})
    try:
        run_queued(runtime)
    finally:
        runtime.queue.scheduler.lease.release()
    done = store.get_task(runtime.engine, task.id)
    assert done.state == "failed"
    assert "the result of task test.unjsonable is not JSON data" in done.error["message"]


def test_serializer_round_trips_huey_messages_and_errors():
    serializer = JsonSerializer()
    eta = datetime.datetime(2024, 5, 1, 2, 30, 15, 123)
    message = Message("id-1", "bhype.scheduler.execute", eta, 0, 0, None, (1, "a"), {"user": None},
                      None, None, datetime.timedelta(seconds=90), None, None, None, 0)
    assert serializer.deserialize(serializer.serialize(message)) == message
    error = Error({"error": "boom", "log": [{"message": "x"}]})
    assert serializer.deserialize(serializer.serialize(error)) == error
    with pytest.raises(TypeError, match="reserved key"):
        serializer.serialize({"__bhype__": "message"})
    with pytest.raises(TypeError, match="not JSON data"):
        serializer.serialize({"x": {1, 2}})


def test_separately_built_runtimes_agree_and_the_in_process_worker_runs_tasks(tmp_path):
    # The API process and the worker each build their own runtime from the same settings.
    api = db_runtime_for(tmp_path)
    worker_runtime = db_runtime_for(tmp_path)
    task = service.submit(api, Principal("erin", "operator"), "core.ping", {"echo": 7})
    handlers_before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    worker = start_in_process_worker(worker_runtime, workers=1)
    try:
        deadline = time.monotonic() + 60  # generous for a loaded machine; not a timing assertion
        while (done := store.get_task(api.engine, task.id)).state not in FINAL_STATES:
            assert time.monotonic() < deadline, "the task never ended"
            time.sleep(0.05)
    finally:
        assert worker.stop(timeout=30) is True
    assert not worker.alive
    assert done.state == "succeeded"
    assert (done.result["echo"], done.result["user"], done.result["pid"]) == (7, "erin", os.getpid())
    # The consumer ran in a thread, so the host process's signal handling is untouched.
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == handlers_before


def test_memory_queue_needs_no_worker(tmp_path):
    with pytest.raises(ConfigError, match="needs no worker"):
        build_consumer(runtime_for(tmp_path, "memory"))
