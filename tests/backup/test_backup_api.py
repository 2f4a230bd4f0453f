"""``GET /api/v1/backup/status`` through the real app, with the host's real rsync.

The API process runs no host commands: the worker's ``backup.probe`` (periodic job and task
kind) runs rsync with the real runner and stores the fact ``backup.status``; the route reads it.
"""

from __future__ import annotations

import re
import shutil

from fastapi.testclient import TestClient
from sqlmodel import Session, select

from bhype_backup.status import FACT_KEY, PROBE_KIND, parse_rsync_version, probe
from bhype_core.api.app import create_app
from bhype_core.db.models import HostCommand
from bhype_core.tasks import TaskContext, store
from bhype_core.testing import act_as
from bhype_core.testing.roles import role_account
from bhype_core.testing.routes import get_route, host_command_count
from bhype_core.worker import start_in_process_worker

# rsync 3.2.7 as packaged by FreeBSD ports (net/rsync), first two lines of `rsync --version`.
FREEBSD_RSYNC_VERSION = """rsync  version 3.2.7  protocol version 31
Copyright (C) 1996-2022 by Andrew Tridgell, Wayne Davison, and others.
"""


def get_status(runtime) -> dict:
    return get_route(runtime, "/api/v1/backup/status").json()  # any user may read the status


def status(runtime) -> dict:
    """Probe as the worker does (the real runner), then read the route; the route itself must
    not run a single host command."""
    stored = probe(TaskContext(runtime, "probe-task", PROBE_KIND))
    assert runtime.facts.get(FACT_KEY).value == stored
    ran = host_command_count(runtime)
    assert ran == 1  # rsync --version, through the runner and its audit trail
    body = get_status(runtime)
    assert host_command_count(runtime) == ran
    assert body["probed"] is True and body["message"] is None and body["age_seconds"] >= 0
    assert body["rsync"] == stored["rsync"]
    return body


def test_only_the_backup_router_is_mounted(backup_runtime):
    runtime = backup_runtime()
    assert runtime.registry.routers.names() == ["backup"]
    paths = set(create_app(runtime=runtime).openapi()["paths"])
    assert {"/api/v1/backup/status", "/api/v1/backup/status/refresh"} <= paths
    assert not any(path.startswith("/api/v1/zfs") for path in paths)


def test_status_with_the_hosts_rsync_and_targets(backup_db_runtime):
    body = status(backup_db_runtime(targets=[
        {"name": "nas", "destination": "backup@nas.example.net:/srv/bhype"},
        {"name": "usb", "destination": "/mnt/usb/bhype", "keep": 3},
    ]))
    rsync = body["rsync"]
    assert rsync["found"] is True, rsync  # rsync is a test prerequisite (tools/install-test-deps)
    assert re.fullmatch(r"\d+\.\d+\.\d+\S*", rsync["version"])
    assert rsync["protocol"] >= 30  # rsync 3.x speaks protocol 30 and later
    assert body["targets_count"] == 2
    assert body["targets"] == [
        {"name": "nas", "kind": "ssh", "destination": "backup@nas.example.net:/srv/bhype", "keep": 7},
        {"name": "usb", "kind": "local", "destination": "/mnt/usb/bhype", "keep": 3},
    ]


def test_version_matches_what_rsync_itself_prints(backup_db_runtime):
    import subprocess

    first_line = subprocess.run(["rsync", "--version"], capture_output=True, text=True, check=True).stdout
    assert status(backup_db_runtime())["rsync"]["version"] in first_line.splitlines()[0]


def test_missing_rsync_is_reported(backup_db_runtime, tmp_path):
    missing = str(tmp_path / "no-rsync")
    body = status(backup_db_runtime(rsync_command=missing))
    assert body["rsync"]["found"] is False and missing in body["rsync"]["error"]
    assert body["targets_count"] == 0


def test_a_program_that_is_not_rsync_is_reported(backup_db_runtime):
    # GNU echo(1) answers --version too, with a line rsync would never print.
    body = status(backup_db_runtime(rsync_command=shutil.which("echo")))
    assert body["rsync"]["found"] is False
    assert body["rsync"]["error"].startswith("unrecognised rsync --version output: ")


def test_parse_rsync_version_sample():
    assert parse_rsync_version(FREEBSD_RSYNC_VERSION) == ("3.2.7", 31)


def test_before_the_first_probe_the_route_says_so_and_lists_the_targets(backup_db_runtime):
    runtime = backup_db_runtime(targets=[{"name": "usb", "destination": "/mnt/usb/bhype"}])
    body = get_status(runtime)
    assert body["probed"] is False and body["probed_at"] is None and body["rsync"] is None
    assert "worker has not probed the host's rsync yet" in body["message"]
    assert "POST /api/v1/backup/status/refresh" in body["message"]
    # The targets are configuration, not host facts: shown at once.
    assert body["targets"] == [{"name": "usb", "kind": "local", "destination": "/mnt/usb/bhype", "keep": 7}]
    assert host_command_count(runtime) == 0


def test_the_probe_is_a_periodic_job_and_a_task_kind(backup_runtime):
    runtime = backup_runtime()
    job = runtime.registry.periodic_jobs[PROBE_KIND]
    assert job.kind == PROBE_KIND and job.minute == "*/5" and job.run_at_start
    assert runtime.registry.tasks[PROBE_KIND].run is probe
    assert PROBE_KIND in runtime.queue.periodic  # its schedule was checked at start-up


def test_only_admins_may_ask_for_a_fresh_probe(backup_db_runtime):
    runtime = backup_db_runtime()
    app = create_app(runtime=runtime)
    act_as(app, "alice", "operator")
    with TestClient(app) as client:
        refused = client.post("/api/v1/backup/status/refresh")
    assert refused.status_code == 403 and refused.json()["error"]["code"] == "forbidden"
    assert store.list_tasks(runtime.engine) == []


def test_refresh_queues_the_probe_and_the_worker_runs_it(backup_db_runtime, local_user):
    runtime = backup_db_runtime()
    app = create_app(runtime=runtime)
    # A real admin: the worker reads the role from the account's groups before it runs a task.
    admin = act_as(app, role_account(local_user, runtime).name, "admin")
    with TestClient(app) as client:
        response = client.post("/api/v1/backup/status/refresh")
        assert response.status_code == 202, response.text
        task_id = response.json()["task_id"]
        assert response.json()["kind"] == PROBE_KIND
        queued = store.get_task(runtime.engine, task_id)
        assert (queued.kind, queued.owner, queued.state) == (PROBE_KIND, admin.name, "queued")
        assert host_command_count(runtime) == 0  # the API process only queued it

        # The worker (here in-process, as `bhype serve` runs it, with the real runner).
        worker = start_in_process_worker(runtime)
        try:
            # The task's live stream ends when the task does: a wait without polling.
            with client.stream("GET", f"/api/v1/tasks/{task_id}/stream") as stream:
                assert stream.status_code == 200
                "".join(stream.iter_text())
        finally:
            worker.stop(timeout=30)
        task = client.get(f"/api/v1/tasks/{task_id}").json()
        body = client.get("/api/v1/backup/status").json()
    assert task["state"] == "succeeded", task
    assert task["result"] == runtime.facts.get(FACT_KEY).value
    assert any(line["message"].startswith("probed: rsync ") for line in task["log"])
    assert body["probed"] is True and body["rsync"]["found"] is True
    # The task's one command, attributed to the admin who asked (the periodic job may have run
    # too while the worker was up, when the test ran in a minute divisible by 5).
    with Session(runtime.engine) as session:
        (ran,) = session.exec(select(HostCommand).where(HostCommand.task_id == task_id)).all()
    assert ran.argv == ["rsync", "--version"] and ran.user == admin.name
