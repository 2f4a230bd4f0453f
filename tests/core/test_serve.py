"""``bhype serve`` as a real process on the embedded default: health, in-process worker, clean stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from bhype_core import __version__
from bhype_core.api.app import create_app
from bhype_core.commands.api_client import default_url
from bhype_core.config import load_settings
from bhype_core.db.migrate import pending
from bhype_core.runtime import build_runtime
from bhype_core.testing.api_auth import token_headers
from bhype_core.testing.ports import free_port

BHYPE = Path(sys.executable).parent / "bhype"
START_DEADLINE = 90.0  # seconds; generous for a loaded 2-core CI machine


def start_serve(tmp_path: Path, *serve_args: str, port: int | None = None) -> tuple[subprocess.Popen, Path, str, Path]:
    """Start ``bhype serve`` in the foreground as this test's child; returns the process, the
    config file, the base URL of the configured port and the log file."""
    port = port or free_port()
    config = tmp_path / "bhype.toml"
    config.write_text(
        f'[core]\ndata_dir = "{tmp_path / "data"}"\n\n[api]\nhost = "127.0.0.1"\nport = {port}\n'
    )
    log = tmp_path / "serve.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("BHYPE_")}
    env["HOME"] = str(tmp_path / "home")
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(BHYPE), "--config", str(config), "serve", *serve_args], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    return process, config, f"http://127.0.0.1:{port}", log


def wait_healthy(process: subprocess.Popen, base: str, log: Path) -> dict:
    """Poll the health endpoint until it answers ok (fail early if the server died)."""
    deadline = time.monotonic() + START_DEADLINE
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"bhype serve exited with {process.returncode}:\n{log.read_text()}")
        try:
            response = httpx.get(f"{base}/api/v1/health", timeout=5)
            if response.status_code == 200:
                return response.json()
        except httpx.TransportError:
            pass  # not listening yet
        time.sleep(0.2)
    pytest.fail(f"bhype serve not healthy after {START_DEADLINE}s:\n{log.read_text()}")


def wait_finished(url: str, headers: dict[str, str]) -> dict:
    """Poll a task until it leaves queued/running."""
    deadline = time.monotonic() + START_DEADLINE
    while time.monotonic() < deadline:
        task = httpx.get(url, headers=headers, timeout=10).json()
        if task["state"] not in ("queued", "running"):
            return task
        time.sleep(0.2)
    pytest.fail(f"task still {task['state']} after {START_DEADLINE}s")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(10)


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_serve_embedded_default(tmp_path, signum):
    process, config, base, log = start_serve(tmp_path)
    try:
        health = wait_healthy(process, base, log)
        assert health["status"] == "ok" and health["version"] == __version__
        assert health["database"] == {**health["database"], "ok": True, "backend": "sqlite"}
        assert str(tmp_path / "data" / "bhype.sqlite3") in health["database"]["detail"]
        assert health["queue"]["ok"] is True and health["queue"]["backend"] == "sqlite"
        assert "redis" not in health

        # serve migrated the embedded database itself.
        runtime = build_runtime(load_settings(config))
        assert pending(runtime) == []

        # The API only queues; the in-process worker of the serve process runs the task. A real
        # API token in the serve process's database stands for a logged-in admin.
        headers = token_headers(create_app(runtime=runtime), "tester", "admin")
        accepted = httpx.post(f"{base}/api/v1/tasks", json={"kind": "core.ping"}, headers=headers, timeout=10)
        assert accepted.status_code == 202, accepted.text
        task = wait_finished(f"{base}/api/v1/tasks/{accepted.json()['id']}", headers)
        assert task["state"] == "succeeded", task
        assert task["result"]["pong"] is True and task["result"]["pid"] == process.pid

        process.send_signal(signum)
        assert process.wait(timeout=60) == 0, log.read_text()
        output = log.read_text()
        assert "stopping the in-process worker" in output
        assert "Traceback" not in output
    finally:
        stop(process)


@pytest.mark.slow
@pytest.mark.mariadb
def test_serve_refuses_an_unmigrated_production_database(tmp_path, fresh_mariadb_url):
    config = tmp_path / "bhype.toml"
    config.write_text(
        f'[core]\ndata_dir = "{tmp_path / "data"}"\ndatabase_url = "{fresh_mariadb_url}"\n'
        f'\n[api]\nport = {free_port()}\n'
    )
    result = subprocess.run(
        [str(BHYPE), "--config", str(config), "serve"], capture_output=True, text=True, timeout=120,
        env={**{k: v for k, v in os.environ.items() if not k.startswith("BHYPE_")}, "HOME": str(tmp_path)},
    )
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("bhype: error: the database lacks") and "bhype db upgrade" in last


@pytest.mark.slow
def test_the_cli_follows_the_port_serve_was_given(tmp_path):
    # ./dev serve --port N: the configuration still says another port; a CLI in another shell
    # must reach the running server without --url, and fall back to the configuration after.
    other = free_port()
    process, config, configured, log = start_serve(tmp_path, "--port", str(other))
    settings = load_settings(config)
    try:
        wait_healthy(process, f"http://127.0.0.1:{other}", log)
        assert default_url(settings, environ={}) == f"http://127.0.0.1:{other}" != configured
        assert default_url(settings, environ={"BHYPE_URL": "http://h:1/"}) == "http://h:1"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=60) == 0, log.read_text()
        assert default_url(settings, environ={}) == configured
    finally:
        stop(process)
