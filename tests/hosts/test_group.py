"""Three hosts on one machine (issue 22): three real worker processes, each with its own data
directory and ``[host] name``, sharing a fresh MariaDB database and the real Redis; one API
creates, starts and stops real QEMU guests on each. A killed worker's host turns unreachable
and its VMs "unknown"; a task for it waits and says so; when it returns, its VMs show their
real state again and the task runs. Judged from rows and API answers, never from timings."""

from __future__ import annotations

import importlib.metadata as metadata
import os
import signal
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from bhype_core.api.app import create_app
from bhype_core.db.migrate import upgrade
from bhype_core.plugins import make_plugin_manager
from bhype_core.runtime import build_runtime
from bhype_core.testing import NO_ROLE_GROUPS
from bhype_core.testing.api_auth import token_headers
from bhype_core.testing.queue import settings_from
from bhype_core.testing.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.guest, pytest.mark.mariadb]

HOSTS = ("h1", "h2", "h3")
UNREACHABLE_AFTER = 3  # seconds without a heartbeat; small so the test does not idle
VMS = "/api/v1/vms"


def host_config(short_dir: Path, name: str, database_url: str, redis_url: str, prefix: str) -> dict:
    data = short_dir / name
    return {
        "core": {"data_dir": str(data), "database_url": database_url, "redis_url": redis_url,
                 # The core's built-ins only: what is tested is the group, not the plugins.
                 "disabled_plugins": sorted({ep.name for ep in metadata.entry_points(group="bhype")
                                             if not ep.name.startswith("core_")})},
        "queue": {"backend": "redis", "name": prefix, "workers": 2},
        "tasks": {"poll_interval": 0.3, "sweep_interval": 1.0},
        "host": {"name": name, "heartbeat_interval": 0.3, "unreachable_after": UNREACHABLE_AFTER},
        "auth": {**NO_ROLE_GROUPS, "account_recheck_interval": 3600},  # no PAM re-check of the test token
        "vm.datastores.default": {"path": str(data / "ds")},
    }


def as_settings(raw: dict) -> dict:
    """``raw`` with the dotted table name nested, as a TOML reader would read it."""
    tables = {key: value for key, value in raw.items() if "." not in key}
    tables["vm"] = {"datastores": {"default": raw["vm.datastores.default"]}}
    return tables


@pytest.fixture
def group(short_dir, fresh_mariadb_url, redis_url, redis_prefix, start_worker, host_builtins):
    """``(client, headers, configs, workers)``: the API (as host h1's process) and a running
    worker per host."""
    configs = {name: host_config(short_dir, name, fresh_mariadb_url, redis_url, redis_prefix) for name in HOSTS}
    runtime = build_runtime(settings_from(as_settings(configs["h1"])),
                            make_plugin_manager(load_entrypoints=False, plugins=host_builtins))
    upgrade(runtime)
    workers = {name: start_worker(configs[name]) for name in HOSTS}
    app = create_app(runtime=runtime)
    with TestClient(app) as client:
        headers = token_headers(app, "alice", "operator")
        yield client, headers, configs, workers
    runtime.engine.dispose()


def hosts(client, headers) -> dict[str, dict]:
    return {host["name"]: host for host in client.get("/api/v1/hosts", headers=headers).json()["hosts"]}


def task(client, headers, task_id: str) -> dict:
    return client.get(f"/api/v1/tasks/{task_id}", headers=headers).json()


def done(client, headers, response) -> dict:
    assert response.status_code == 202, response.text
    task_id = response.json()["task_id"]
    ended = wait_for(lambda: (t := task(client, headers, task_id))["state"] not in ("queued", "running") and t,
                     f"task {task_id} to end", detail=lambda: task(client, headers, task_id))
    assert ended["state"] == "succeeded", ended
    return ended


def vm(client, headers, name: str) -> dict:
    return client.get(f"{VMS}/{name}", headers=headers).json()


def test_three_hosts_share_one_api_and_a_dead_host_waits(group):
    client, headers, configs, workers = group
    seen = wait_for(lambda: len(found := hosts(client, headers)) == 3 and found, "three hosts to register")
    assert {name: host["state"] for name, host in seen.items()} == dict.fromkeys(HOSTS, "reachable")
    assert all(host["versions"]["bhype-core"] and "vm.start" in host["task_kinds"] for host in seen.values())

    started = []
    try:
        for name in HOSTS:
            created = done(client, headers, client.post(VMS, headers=headers, json={
                "name": f"vm-{name}", "host": name, "spec": {"boot": "grub", "memory": "64M"}}))
            assert created["host"] == name and created["worker_host"] == name  # only its worker ran it
        listed = client.get(VMS, params={"host": "h2"}, headers=headers).json()["vms"]
        assert [(v["name"], v["host"]) for v in listed] == [("vm-h2", "h2")]
        for name in HOSTS:
            ran = done(client, headers, client.post(f"{VMS}/vm-{name}/start", headers=headers))
            started.append(name)
            assert ran["worker_host"] == name
            assert vm(client, headers, f"vm-{name}")["state"] == "running"
        done(client, headers, client.post(f"{VMS}/vm-h1/stop", params={"timeout": 2}, headers=headers))
        started.remove("h1")
        assert vm(client, headers, "vm-h1")["state"] == "stopped"

        # h3's worker dies: its host turns unreachable, its VM "unknown"; the others go on.
        workers["h3"].send_signal(signal.SIGKILL)
        workers["h3"].wait()
        wait_for(lambda: hosts(client, headers)["h3"]["state"] == "unreachable", "h3 to turn unreachable")
        wait_for(lambda: vm(client, headers, "vm-h3")["state"] == "unknown", "vm-h3 to show unknown")
        assert "host h3 is unreachable; last known state: running" in vm(client, headers, "vm-h3")["state_detail"]
        assert vm(client, headers, "vm-h2")["state"] == "running"
        stopping = client.post(f"{VMS}/vm-h3/stop", params={"timeout": 2}, headers=headers)
        assert stopping.status_code == 202
        stop_id = stopping.json()["task_id"]
        waiting = wait_for(lambda: (t := task(client, headers, stop_id))["progress_message"].startswith(
            "waiting: host h3 is unreachable") and t, "the stop to say why it waits")
        assert waiting["state"] == "queued" and waiting["host"] == "h3"

        # h3 comes back: its VM shows its real state again and the waiting stop runs there.
        workers["h3"] = restarted = type(workers["h3"])(workers["h3"].config, workers["h3"].log_path).start()
        try:
            restarted.wait_ready()
            wait_for(lambda: hosts(client, headers)["h3"]["state"] == "reachable", "h3 to be reachable again")
            ended = wait_for(lambda: (t := task(client, headers, stop_id))["state"] not in ("queued", "running") and t,
                             "the waiting stop to run")
            assert ended["state"] == "succeeded" and ended["worker_host"] == "h3", ended
            started.remove("h3")
            assert vm(client, headers, "vm-h3")["state"] == "stopped"
        finally:
            restarted.stop()
    finally:
        for name in started:  # leave no guest running
            if workers[name].process.poll() is None:
                client.post(f"{VMS}/vm-{name}/force-stop", headers=headers)
        for name in started:
            wait_for(lambda name=name: vm(client, headers, f"vm-{name}")["state"] in ("stopped", "unknown"),
                     f"vm-{name} to stop")
    assert os.path.isdir(configs["h2"]["vm.datastores.default"]["path"])  # each host's own datastore
