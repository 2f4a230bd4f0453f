"""Every host command lands in the audit trail with its user and task, and the API shows it."""

from __future__ import annotations

import sys

import pytest
from fastapi.testclient import TestClient

from bhype_core.api.app import create_app
from bhype_core.errors import CommandError
from bhype_core.host.audit import acting_as
from bhype_core.testing import token_headers


def test_runtime_runner_records_commands_with_user_and_task(db_engine, bhype_runtime):
    runner = bhype_runtime.runner
    with acting_as(user="alice", task_id="task-1"):
        runner.run([sys.executable, "-c", "print('hi')"])
    with acting_as(user="bob", task_id="task-2"), pytest.raises(CommandError):
        runner.run([sys.executable, "-c", "import sys; sys.stderr.write('broken\\n'); sys.exit(3)"])

    app = create_app(runtime=bhype_runtime)
    # Real API tokens through the real guard: the trail is every user's, so it is for admins.
    client = TestClient(app, headers=token_headers(app, "root-admin", "admin"))
    everything = client.get("/api/v1/audit/commands").json()["commands"]
    assert [row["user"] for row in everything] == ["bob", "alice"]  # newest first

    (failed,) = client.get("/api/v1/audit/commands", params={"task_id": "task-2"}).json()["commands"]
    assert failed["returncode"] == 3 and failed["stderr_tail"] == "broken"
    assert failed["argv"][0] == sys.executable and failed["target"] == "local"

    (ok,) = client.get("/api/v1/audit/commands", params={"user": "alice"}).json()["commands"]
    assert ok["returncode"] == 0 and ok["task_id"] == "task-1"

    bad = client.get("/api/v1/audit/commands", params={"limit": 0})
    assert bad.status_code == 422 and bad.json()["error"]["fields"][0]["path"].endswith("limit")


def test_only_admins_read_the_audit_trail(db_engine, bhype_runtime):
    with acting_as(user="alice", task_id="task-1"):
        bhype_runtime.runner.run([sys.executable, "-c", "pass"])
    app = create_app(runtime=bhype_runtime)
    client = TestClient(app)

    anonymous = client.get("/api/v1/audit/commands")
    assert anonymous.status_code == 401 and anonymous.json()["error"]["code"] == "unauthorized"

    # An operator may not read it, not even filtered to their own commands.
    operator = token_headers(app, "alice", "operator")
    for params in ({}, {"user": "alice"}, {"task_id": "task-1"}):
        refused = client.get("/api/v1/audit/commands", params=params, headers=operator)
        assert refused.status_code == 403, refused.text
        assert refused.json()["error"]["code"] == "forbidden" and "admin" in refused.json()["error"]["message"]
        assert "commands" not in refused.json()

    allowed = client.get("/api/v1/audit/commands", headers=token_headers(app, "root-admin", "admin"))
    assert allowed.status_code == 200
    assert [(row["user"], row["task_id"]) for row in allowed.json()["commands"]] == [("alice", "task-1")]
