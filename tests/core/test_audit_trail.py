"""Every host command lands in the audit trail with its user and task, and the API shows it."""

from __future__ import annotations

import sys

import pytest
from fastapi.testclient import TestClient

from bhype_core.api.app import create_app
from bhype_core.errors import CommandError
from bhype_core.host.audit import acting_as


def test_runtime_runner_records_commands_with_user_and_task(db_engine, bhype_runtime):
    runner = bhype_runtime.runner
    with acting_as(user="alice", task_id="task-1"):
        runner.run([sys.executable, "-c", "print('hi')"])
    with acting_as(user="bob", task_id="task-2"), pytest.raises(CommandError):
        runner.run([sys.executable, "-c", "import sys; sys.stderr.write('broken\\n'); sys.exit(3)"])

    client = TestClient(create_app(runtime=bhype_runtime))
    everything = client.get("/api/v1/audit/commands").json()["commands"]
    assert [row["user"] for row in everything] == ["bob", "alice"]  # newest first

    (failed,) = client.get("/api/v1/audit/commands", params={"task_id": "task-2"}).json()["commands"]
    assert failed["returncode"] == 3 and failed["stderr_tail"] == "broken"
    assert failed["argv"][0] == sys.executable and failed["target"] == "local"

    (ok,) = client.get("/api/v1/audit/commands", params={"user": "alice"}).json()["commands"]
    assert ok["returncode"] == 0 and ok["task_id"] == "task-1"

    bad = client.get("/api/v1/audit/commands", params={"limit": 0})
    assert bad.status_code == 422 and bad.json()["error"]["fields"][0]["path"].endswith("limit")
