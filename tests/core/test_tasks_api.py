"""``/api/v1/tasks``: submit (202), list, show with log, live stream (SSE), cancel and retry,
with ownership: an operator never learns that another user's task exists."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

import bhype_core.builtins.models as core_models
import bhype_core.builtins.tasks as core_tasks
from bhype_core.api.app import create_app
from bhype_core.auth.principal import SYSTEM
from bhype_core.db.migrate import upgrade
from bhype_core.plugins import make_plugin_manager
from bhype_core.runtime import build_runtime
from bhype_core.tasks import service
from bhype_core.tasks.system import SYSTEM_OWNER, submit_as_system
from bhype_core.testing.api_auth import act_as
from bhype_core.testing.queue import queue_config, settings_from
from bhype_core.worker import start_in_process_worker

TASKS = "/api/v1/tasks"
RESULT_WAIT = 60.0  # seconds; generous for a loaded machine, not a timing assertion


@pytest.fixture
def runtime(tmp_path: Path):
    raw = queue_config(tmp_path / "data", "sqlite")
    raw["tasks"] = {"poll_interval": 0.2, "stream_interval": 0.05}
    plugins = [("core_models", core_models), ("core_tasks", core_tasks)]
    built = build_runtime(settings_from(raw), make_plugin_manager(load_entrypoints=False, plugins=plugins))
    upgrade(built)
    yield built
    built.engine.dispose()


@pytest.fixture
def app(runtime):
    return create_app(runtime=runtime)


@pytest.fixture
def client(app):
    with TestClient(app) as test_client:
        yield test_client


@pytest.fixture
def worker(runtime):
    handle = start_in_process_worker(runtime)
    yield handle
    handle.stop(timeout=30)


def submit(client, kind="core.ping", **arguments) -> dict:
    response = client.post(TASKS, json={"kind": kind, "arguments": arguments})
    assert response.status_code == 202, response.text
    return response.json()


def events_of(text: str) -> list[tuple[str, str | None, object]]:
    """``(event, id, data)`` of each Server-Sent Event in ``text`` (comments skipped)."""
    parsed = []
    for block in text.strip().split("\n\n"):
        fields: dict[str, str] = {}
        for line in block.splitlines():
            if line.startswith(":"):
                continue
            name, _, value = line.partition(": ")
            fields[name] = value
        if fields:
            parsed.append((fields["event"], fields.get("id"), json.loads(fields["data"])))
    return parsed


def wait_until_ended(client, task_id: str) -> dict:
    # The stream ends when the task does: a wait without polling loops or sleeps.
    with client.stream("GET", f"{TASKS}/{task_id}/stream") as response:
        assert response.status_code == 200
        body = "".join(response.iter_text())
    return events_of(body)[-1][2]


def test_submit_answers_202_with_the_queued_task(app, client):
    act_as(app, "alice", "operator")
    task = submit(client, echo="hi", locks=["vm:3"])
    assert (task["owner"], task["kind"], task["state"], task["target"]) == ("alice", "core.ping", "queued", "vm:3")
    assert task["arguments"] == {"echo": "hi", "locks": ["vm:3"]} and task["locks"] == ["vm:3"]
    assert "dispatch_token" not in task and "worker_id" not in task  # scheduler internals stay inside


@pytest.mark.parametrize(
    ("body", "paths"),
    [
        ({"kind": "core.nope"}, ["kind"]),
        ({"kind": "core.ping", "arguments": {"volume": 1, "sleep": 1}}, ["arguments.volume"]),
        ({"kind": "core.ping", "arguments": {"locks": "vm:1"}}, ["arguments.locks"]),
        ({"arguments": {}}, ["body.kind"]),
        ({"kind": "core.ping", "arguments": [1]}, ["body.arguments"]),
    ],
)
def test_bad_submissions_answer_422_naming_the_fields(app, client, body, paths):
    act_as(app, "alice", "operator")
    response = client.post(TASKS, json=body)
    assert response.status_code == 422
    error = response.json()["error"]
    assert error["code"] == "validation_error"
    assert [field["path"] for field in error["fields"]] == paths
    assert client.get(TASKS).json() == {"tasks": []}  # nothing stored


def test_listing_is_own_tasks_for_operators_and_everything_for_admins(app, client):
    act_as(app, "alice", "operator")
    mine = submit(client)
    act_as(app, "bob", "operator")
    theirs = submit(client, echo=2)
    assert [t["id"] for t in client.get(TASKS).json()["tasks"]] == [theirs["id"]]
    assert client.get(TASKS, params={"user": "alice"}).status_code == 403
    act_as(app, "root", "admin")
    assert [t["id"] for t in client.get(TASKS).json()["tasks"]] == [theirs["id"], mine["id"]]
    assert [t["id"] for t in client.get(TASKS, params={"user": "alice"}).json()["tasks"]] == [mine["id"]]
    assert client.get(TASKS, params={"state": "running"}).json() == {"tasks": []}
    assert len(client.get(TASKS, params={"state": "queued", "kind": "core.ping"}).json()["tasks"]) == 2
    response = client.get(TASKS, params={"state": "sleeping"})
    assert response.status_code == 422 and response.json()["error"]["fields"][0]["path"] == "state"


def test_another_users_task_is_not_found_on_every_route(app, client):
    act_as(app, "bob", "operator")
    theirs = submit(client)
    act_as(app, "alice", "operator")
    for method, suffix in [("GET", ""), ("GET", "/stream"), ("POST", "/cancel"), ("POST", "/retry")]:
        other = client.request(method, f"{TASKS}/{theirs['id']}{suffix}")
        unknown = client.request(method, f"{TASKS}/00000000-0000-0000-0000-000000000000{suffix}")
        assert other.status_code == unknown.status_code == 404, (method, suffix)
        assert other.json()["error"]["message"].replace(theirs["id"], "X") == \
            unknown.json()["error"]["message"].replace("00000000-0000-0000-0000-000000000000", "X")
    act_as(app, "root", "admin")
    assert client.get(f"{TASKS}/{theirs['id']}").json()["owner"] == "bob"


def test_cancel_a_queued_task_then_retry_it(app, client):
    act_as(app, "alice", "operator")
    task = submit(client, echo="later")
    cancelled = client.post(f"{TASKS}/{task['id']}/cancel")
    assert cancelled.status_code == 202
    assert (cancelled.json()["state"], cancelled.json()["cancel_requested"]) == ("cancelled", True)
    again = client.post(f"{TASKS}/{task['id']}/cancel")
    assert again.status_code == 409 and again.json()["error"]["code"] == "conflict"

    retried = client.post(f"{TASKS}/{task['id']}/retry")
    assert retried.status_code == 202
    body = retried.json()
    assert (body["retry_of"], body["state"], body["arguments"]) == (task["id"], "queued", {"echo": "later"})
    assert body["id"] != task["id"]
    assert client.post(f"{TASKS}/{body['id']}/retry").status_code == 409  # a queued task


def test_a_task_runs_and_shows_its_log_and_stream(app, client, worker):
    act_as(app, "alice", "operator")
    task = submit(client, echo="round trip", sleep=0.3)
    with client.stream("GET", f"{TASKS}/{task['id']}/stream") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        events = events_of("".join(response.iter_text()))

    names = [name for name, _, _ in events]
    assert names[-1] == "end" and names.count("end") == 1
    logs = [(event_id, data) for name, event_id, data in events if name == "log"]
    assert [data["message"] for _, data in logs] == ["ping from alice", "sleeping 0.3 s"]
    assert [event_id for event_id, _ in logs] == ["1", "2"]  # Last-Event-ID resumes after these
    progress = [data for name, _, data in events if name == "progress"]
    assert progress[-1] == {"state": "succeeded", "progress": 100.0, "message": "done"}
    percents = [p["progress"] for p in progress]
    assert percents == sorted(percents)
    end = events[-1][2]
    assert end["state"] == "succeeded" and end["result"]["echo"] == "round trip"

    shown = client.get(f"{TASKS}/{task['id']}").json()
    assert shown["state"] == "succeeded" and shown["result"]["user"] == "alice"
    assert [(line["seq"], line["message"]) for line in shown["log"]] == [(1, "ping from alice"), (2, "sleeping 0.3 s")]
    assert shown["started"] <= shown["picked_up"] <= shown["finished"]

    resumed = client.get(f"{TASKS}/{task['id']}/stream", headers={"Last-Event-ID": "1"})
    again = events_of(resumed.text)
    assert [data["seq"] for name, _, data in again if name == "log"] == [2]
    assert again[-1][0] == "end"


def test_cancel_a_running_task_through_the_api(app, client, worker):
    act_as(app, "alice", "operator")
    task = submit(client, sleep=600)
    with client.stream("GET", f"{TASKS}/{task['id']}/stream") as response:
        for line in response.iter_lines():
            if "sleeping 600 s" in line:  # its log says it runs (not merely started)
                break
    requested = client.post(f"{TASKS}/{task['id']}/cancel")
    assert requested.status_code == 202 and requested.json()["cancel_requested"] is True
    final = wait_until_ended(client, task["id"])
    assert final["state"] == "cancelled" and final["error"]["code"] == "cancelled"
    log = [line["message"] for line in client.get(f"{TASKS}/{task['id']}").json()["log"]]
    assert log[-2:] == ["cancel requested by alice", f"cancelled: task {task['id']} was cancelled"]


def test_failed_task_shows_its_error_and_retry_runs_it_again(app, client, worker):
    act_as(app, "alice", "operator")
    task = submit(client, fail="disk full")
    final = wait_until_ended(client, task["id"])
    assert final["state"] == "failed"
    assert final["error"] == {"code": "ping_failed", "message": "disk full",
                              "detail": {"type": "PingFailed", "kind": "core.ping", "plugin": "core_tasks"}}
    retried = client.post(f"{TASKS}/{task['id']}/retry").json()
    assert wait_until_ended(client, retried["id"])["state"] == "failed"


def test_system_tasks_and_sub_tasks_show_in_the_list_for_admins(runtime, app, client):
    scheduled = submit_as_system(runtime, "core.ping", {"echo": "scheduled"})
    child = service.submit(runtime, SYSTEM, "core.ping", {}, parent=scheduled.id)
    act_as(app, "root", "admin")
    listed = client.get(TASKS, params={"user": SYSTEM_OWNER}).json()["tasks"]
    assert [(task["id"], task["owner"], task["parent_id"]) for task in listed] == [
        (child.id, SYSTEM_OWNER, scheduled.id), (scheduled.id, SYSTEM_OWNER, None)]
    act_as(app, "alice", "operator")
    assert client.get(TASKS).json()["tasks"] == []  # operators see only their own
    assert client.get(f"{TASKS}/{scheduled.id}").status_code == 404
