"""Queue fixtures of the test kit: the real Redis server under a unique prefix, queue settings,
and real worker processes (``python -m bhype_core.worker``) that the test starts and stops.

Redis is the real server (``BHYPE_TEST_REDIS``, default ``redis://127.0.0.1:6379/0``). When it
cannot be reached the tests that need it are skipped with the reason, except under ``CI=true``,
where they fail: CI must never pass by silently not testing Redis.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from bhype_core.config import Settings, apply_environment
from bhype_core.testing.parts import missing

REDIS_ENV = "BHYPE_TEST_REDIS"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
READY_LINE = "bhype worker ready"


def redis_server_url() -> str:
    """The Redis server the queue tests use."""
    return os.environ.get(REDIS_ENV) or DEFAULT_REDIS


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the real Redis server, checked once per session (fails when unreachable, unless
    the run says ``--without redis``)."""
    import redis

    url = redis_server_url()
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=5)
        client.ping()
        client.close()
    except redis.RedisError as exc:
        message = f"Redis at {url} is not reachable ({exc}); set {REDIS_ENV} or start redis-server"
        missing("redis", message)
    return url


def delete_keys(url: str, prefix: str) -> int:
    """Delete every key of ``url``'s database that contains ``prefix``; returns how many."""
    import redis

    client = redis.Redis.from_url(url, socket_connect_timeout=3, socket_timeout=10)
    try:
        keys = list(client.scan_iter(match=f"*{prefix}*", count=500))
        return client.delete(*keys) if keys else 0
    finally:
        client.close()


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A name unique to this test (use it as ``queue.name`` or a key prefix); every Redis key
    containing it is deleted afterwards."""
    prefix = f"bhype_test_{os.getpid()}_{secrets.token_hex(4)}"
    yield prefix
    delete_keys(redis_url, prefix)


def queue_config(data_dir: Path, backend: str, *, redis_url: str = "", name: str = "bhype") -> dict[str, Any]:
    """The raw configuration (TOML tables) for a queue test: data under ``data_dir``."""
    core: dict[str, Any] = {"data_dir": str(data_dir)}
    if redis_url:
        core["redis_url"] = redis_url
    return {"core": core, "queue": {"backend": backend, "name": name}}


def settings_from(raw: Mapping[str, Any]) -> Settings:
    """Validated settings from raw tables (no file, no environment)."""
    return Settings(apply_environment(dict(raw), {}), None)


def write_config(path: Path, raw: Mapping[str, Mapping[str, Any]]) -> Path:
    """Write ``raw`` (tables of strings, numbers, booleans and lists) as a TOML file."""
    lines = []
    for table, values in raw.items():
        lines.append(f"[{table}]")
        # A JSON string, number, boolean or array of those is also a valid TOML value.
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()]
        lines.append("")
    path.write_text("\n".join(lines))
    return path


class WorkerProcess:
    """A real ``python -m bhype_core.worker --config PATH`` child of the test.

    Output goes to ``log_path``. The environment is the test's minus every ``BHYPE_*``
    variable (so a developer's settings cannot leak in), plus ``env``.
    """

    def __init__(self, config: Path, log_path: Path, env: Mapping[str, str] | None = None) -> None:
        self.config = config
        self.log_path = log_path
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("BHYPE_")}
        self.env.update(PYTHONUNBUFFERED="1", **(env or {}))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> WorkerProcess:
        """Start the worker (returns at once; see :meth:`wait_ready`)."""
        with open(self.log_path, "ab") as log_file:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "bhype_core.worker", "--config", str(self.config)],
                stdin=subprocess.DEVNULL, stdout=log_file, stderr=subprocess.STDOUT, env=self.env,
            )
        return self

    @property
    def pid(self) -> int:
        assert self.process is not None, "worker not started"
        return self.process.pid

    def log_text(self) -> str:
        """Everything the worker wrote so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def wait_for_log(self, text: str, timeout: float = 60.0) -> None:
        """Wait until ``text`` appears in the worker's output.

        :raises AssertionError: the worker exited or ``timeout`` passed first (shows the log).
        """
        assert self.process is not None, "worker not started"
        deadline = time.monotonic() + timeout
        while text not in self.log_text():
            if self.process.poll() is not None:
                status = self.process.returncode
                raise AssertionError(f"worker exited ({status}) before {text!r}:\n{self.log_text()}")
            if time.monotonic() > deadline:
                raise AssertionError(f"no {text!r} from the worker within {timeout} s:\n{self.log_text()}")
            time.sleep(0.05)

    def wait_ready(self, timeout: float = 60.0) -> WorkerProcess:
        """Wait until the consumer has started."""
        self.wait_for_log(READY_LINE, timeout)
        return self

    def send_signal(self, signum: int) -> None:
        """Send ``signum`` to this worker (only this process, by its pid)."""
        assert self.process is not None, "worker not started"
        self.process.send_signal(signum)

    def wait(self, timeout: float = 30.0) -> int:
        """Wait for the worker to exit; returns its exit status."""
        assert self.process is not None, "worker not started"
        return self.process.wait(timeout)

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the worker if it still runs: SIGTERM (huey: at once), then SIGKILL."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout)


@pytest.fixture
def start_worker(tmp_path: Path) -> Iterator[Any]:
    """``start_worker(raw_config, env=None) -> WorkerProcess``: write the configuration, start a
    real worker process on it, wait until it is ready. Workers still running are stopped after
    the test."""
    started: list[WorkerProcess] = []

    def start(raw: Mapping[str, Mapping[str, Any]], env: Mapping[str, str] | None = None) -> WorkerProcess:
        number = len(started) + 1
        config = write_config(tmp_path / f"worker{number}.toml", raw)
        worker = WorkerProcess(config, tmp_path / f"worker{number}.log", env)
        started.append(worker.start())
        return worker.wait_ready()

    yield start
    for worker in started:
        worker.stop()
