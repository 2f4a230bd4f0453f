"""``/api/v1/hostops`` and ``bhype service``: admins only, host work queued as tasks, input
checked before anything is queued, passwords never shown; the CLI drives a real sshd."""

from __future__ import annotations

import io
import json
import sys

import pytest
from fastapi.testclient import TestClient

from bhype_core import cli
from bhype_core.api.app import create_app
from bhype_core.testing import act_as
from bhype_core.testing.api_server import served_cli

from .initd import sshd_service

pytestmark = pytest.mark.sshd


def client_as(runtime, name: str, role: str = "admin") -> TestClient:
    app = create_app(runtime=runtime)
    act_as(app, name, role)
    return TestClient(app)


def test_routes_are_for_admins_and_validate_before_queuing(hostops_runtime):
    runtime = hostops_runtime()
    admin = client_as(runtime, runtime.extras["admin"].name)
    listed = admin.get("/api/v1/hostops/services")
    assert listed.status_code == 200
    assert [s["name"] for s in listed.json()["services"]] == ["sshd", "rsyncd"]
    assert listed.json()["services"][0]["probed_at"] is None  # the API runs no host command
    assert admin.post("/api/v1/hostops/services/mariadb/start").status_code == 422
    assert admin.post("/api/v1/hostops/services/sshd/explode").status_code == 404
    # From another machine (the test client is not loopback) stopping sshd cuts no session of ours…
    queued = admin.post("/api/v1/hostops/services/sshd/stop", json={})
    assert queued.status_code == 202 and queued.json()["kind"] == "service.stop"
    # …but from a CLI in an SSH login it does, unless confirmed.
    refused = admin.post("/api/v1/hostops/services/sshd/stop", json={"session_hint": "ssh"})
    assert refused.status_code == 422 and "would cut" in refused.text
    assert admin.post("/api/v1/hostops/services/sshd/stop",
                      json={"session_hint": "ssh", "confirm_session_loss": True}).status_code == 202
    # The web UI's confirmation box adds the flag as a query parameter.
    assert admin.post("/api/v1/hostops/services/sshd/stop?confirm_session_loss=true",
                      json={"session_hint": "ssh"}).status_code == 202
    operator = client_as(runtime, "someone", "operator")
    for method, path in (("GET", "/services"), ("POST", "/services/sshd/start"), ("GET", "/findings"),
                         ("POST", "/check"), ("GET", "/rsyncd")):
        assert operator.request(method, f"/api/v1/hostops{path}").status_code == 403


def test_rsyncd_config_through_the_api_never_shows_a_password(hostops_runtime, tmp_path):
    runtime = hostops_runtime()
    admin = client_as(runtime, runtime.extras["admin"].name)
    document = {"users": [{"name": "peer", "password": "a-long-secret"}],
                "modules": [{"name": "incoming", "path": str(tmp_path), "read_only": False, "auth_users": ["peer"]}]}
    accepted = admin.put("/api/v1/hostops/rsyncd", json=document)
    assert accepted.status_code == 202 and accepted.json()["kind"] == "hostops.rsyncd_apply"
    shown = admin.get("/api/v1/hostops/rsyncd").json()
    assert shown["users"] == ["peer"] and shown["modules"][0]["name"] == "incoming"
    assert "a-long-secret" not in admin.get("/api/v1/hostops/rsyncd").text
    task = admin.get(f"/api/v1/tasks/{accepted.json()['task_id']}").json()
    assert "a-long-secret" not in json.dumps(task)  # not in the task's arguments either
    bad = admin.put("/api/v1/hostops/rsyncd", json={"modules": [{"name": "x", "path": "/a\nuid = root"}]})
    assert bad.status_code == 422
    assert admin.get("/api/v1/hostops/rsyncd").json()["modules"][0]["name"] == "incoming"  # nothing lost


def test_findings_routes(hostops_runtime):
    runtime = hostops_runtime()
    admin = client_as(runtime, runtime.extras["admin"].name)
    assert admin.get("/api/v1/hostops/findings").json() == {"findings": [], "last_run": None}
    assert admin.post("/api/v1/hostops/check").status_code == 202
    assert admin.post("/api/v1/hostops/findings/999/dismiss", json={"days": 3}).status_code == 404
    assert admin.get("/api/v1/hostops/findings", params={"state": "bogus"}).status_code == 422


@pytest.fixture
def served(hostops_runtime, tmp_path, monkeypatch):
    sshd = sshd_service(tmp_path / "sshd")
    runtime = hostops_runtime({"queue": {"backend": "sqlite"}}, service_platform="sysv",
                              script_names={"sshd": sshd.script, "rsyncd": "bht-absent-rsync"},
                              config_checks={"sshd": ["/usr/sbin/sshd", "-t", "-f", str(sshd.config)]})
    admin = runtime.extras["admin"].name
    monkeypatch.delenv("SSH_CONNECTION", raising=False)
    monkeypatch.delenv("SSH_CLIENT", raising=False)
    try:
        with served_cli(runtime, tmp_path, monkeypatch, [(admin, "admin")], as_user=admin) as server:
            yield server, sshd
    finally:
        sshd.remove()


def bhype(server, capsys, monkeypatch, *args: str) -> tuple[int, str, str]:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    status = cli.main(["--config", str(server["config"]), *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_bhype_service_drives_a_real_sshd(served, capsys, monkeypatch):
    server, sshd = served
    status, out, err = bhype(server, capsys, monkeypatch, "service", "start", "sshd")
    assert status == 0, err
    assert "sshd: running" in out and f"$ service {sshd.script} start" in err  # the task log, followed
    assert sshd.pid() is not None
    status, out, _ = bhype(server, capsys, monkeypatch, "service", "list", "--json")
    assert status == 0
    listed = {s["name"]: s for s in json.loads(out)}
    assert listed["sshd"]["running"] is True
    monkeypatch.setenv("SSH_CONNECTION", "192.0.2.1 50000 192.0.2.2 22")  # as if logged in over SSH
    status, _, err = bhype(server, capsys, monkeypatch, "service", "stop", "sshd")
    assert status != 0 and "confirm_session_loss" in err and sshd.pid() is not None
    status, out, err = bhype(server, capsys, monkeypatch, "service", "stop", "sshd", "--confirm-session-loss")
    assert status == 0, err
    assert "sshd: stopped" in out and sshd.pid() is None
    status, out, _ = bhype(server, capsys, monkeypatch, "service", "list")
    assert status == 0 and "stopped" in out.splitlines()[1]
