"""The worker as a real separate process (``python -m bhype_core.worker``) on the embedded
SQLite queue and on the real Redis server: round trips, errors, signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

import bhype_core.builtins.models as core_models
import bhype_core.builtins.tasks as core_tasks
from bhype_core.auth.principal import Principal
from bhype_core.db.migrate import upgrade
from bhype_core.db.task_models import FINAL_STATES
from bhype_core.errors import ValidationErrors
from bhype_core.plugins import make_plugin_manager
from bhype_core.runtime import build_runtime
from bhype_core.tasks import service, store
from bhype_core.testing.queue import queue_config, settings_from, write_config

pytestmark = pytest.mark.slow

BACKENDS = ["sqlite", pytest.param("redis", marks=pytest.mark.redis)]
ALICE = Principal("alice", "operator")
RESULT_TIMEOUT = 60.0  # generous: a loaded 2-core machine; not a timing assertion


@pytest.fixture(params=BACKENDS)
def worker_config(request, tmp_path):
    """Raw configuration for one backend: data under tmp_path, Redis keys under a unique name."""
    if request.param == "redis":
        redis_url = request.getfixturevalue("redis_url")
        prefix = request.getfixturevalue("redis_prefix")
        return queue_config(tmp_path / "data", "redis", redis_url=redis_url, name=prefix)
    return queue_config(tmp_path / "data", "sqlite")


def client_runtime(raw):
    """The API process's view: its own runtime, only the core's task kinds, database migrated."""
    pm = make_plugin_manager(load_entrypoints=False, plugins=[("core_models", core_models), ("core_tasks", core_tasks)])
    runtime = build_runtime(settings_from(raw), pm)
    upgrade(runtime)
    return runtime


def ended(runtime, task_id: str, timeout: float = RESULT_TIMEOUT):
    """The Task row once it is final."""
    deadline = time.monotonic() + timeout
    while (task := store.get_task(runtime.engine, task_id)).state not in FINAL_STATES:
        assert time.monotonic() < deadline, f"task {task_id} never ended"
        time.sleep(0.05)
    return task


def test_ping_round_trip_and_failure_through_a_worker_process(worker_config, start_worker):
    worker = start_worker(worker_config)
    runtime = client_runtime(worker_config)

    task = ended(runtime, service.submit(runtime, ALICE, "core.ping", {"echo": ["round", 1]}).id)
    assert task.state == "succeeded" and task.result["pong"] is True
    assert task.result["pid"] == worker.pid != os.getpid()  # it really ran over there
    assert task.result["echo"] == ["round", 1]
    assert (task.result["user"], task.result["task_id"]) == ("alice", task.id)
    assert [line.message for line in store.read_log(runtime.engine, task.id)] == ["ping from alice"]

    failing = ended(runtime, service.submit(runtime, ALICE, "core.ping", {"fail": "no such pool"}).id)
    assert failing.state == "failed" and failing.error["message"] == "no such pool"
    assert (failing.error["detail"]["type"], failing.error["detail"]["plugin"]) == ("PingFailed", "core_tasks")

    with pytest.raises(ValidationErrors, match="unknown task kind 'core.nope'"):
        service.submit(runtime, ALICE, "core.nope", {})

    log = worker.log_text()
    assert "task kind core.ping (plugin core_tasks)" in log  # the worker names what it runs
    assert f"task core.ping {failing.id} started (user alice)" in log


def test_worker_stops_gracefully_on_sigint(worker_config, start_worker):
    check_graceful_stop(worker_config, start_worker, signal.SIGINT)


def test_worker_stops_gracefully_on_sighup(tmp_path, start_worker):
    # huey would re-exec itself; bHype's worker stops gracefully (see BhypeConsumer).
    check_graceful_stop(queue_config(tmp_path / "data", "sqlite"), start_worker, signal.SIGHUP)


def check_graceful_stop(raw, start_worker, signum):
    worker = start_worker(raw)
    runtime = client_runtime(raw)
    task = service.submit(runtime, ALICE, "core.ping", {"sleep": 1.5, "echo": "finish me"})
    worker.wait_for_log(f"task core.ping {task.id} started")

    worker.send_signal(signum)
    assert worker.wait(timeout=RESULT_TIMEOUT) == 0
    # Graceful: the task that was running when the signal arrived still finished.
    done = store.get_task(runtime.engine, task.id)
    assert done.state == "succeeded" and done.result["echo"] == "finish me" and done.result["pid"] == worker.pid
    assert (done.progress, done.progress_message) == (100.0, "done")
    assert "bhype worker stopped" in worker.log_text()


def test_worker_stops_at_once_on_sigterm(tmp_path, start_worker):
    raw = queue_config(tmp_path / "data", "sqlite")
    worker = start_worker(raw)
    runtime = client_runtime(raw)
    task = service.submit(runtime, ALICE, "core.ping", {"sleep": 600})
    worker.wait_for_log(f"task core.ping {task.id} started")

    worker.send_signal(signal.SIGTERM)
    assert worker.wait(timeout=RESULT_TIMEOUT) == 0
    # Immediate: the running task was abandoned, and the stopping worker said so on its row.
    assert store.get_task(runtime.engine, task.id).state == "interrupted"
    assert "Received SIGTERM" in worker.log_text()


def test_worker_with_a_bad_configuration_exits_naming_the_key(tmp_path):
    raw = {"queue": {"backend": "redis"}, "core": {"data_dir": str(tmp_path)}}
    config = write_config(tmp_path / "bad.toml", raw)
    env = {k: v for k, v in os.environ.items() if not k.startswith("BHYPE_")}
    done = subprocess.run(
        [sys.executable, "-m", "bhype_core.worker", "--config", str(config)],
        capture_output=True, text=True, timeout=120, env=env, stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 2
    assert "bhype worker: queue.backend is 'redis' but core.redis_url is empty" in done.stderr
