"""Notifications in the web UI: the ``bhype_notify`` hook keeps each event for its user (no
user: every admin), the API lists them and moves the read marker, the live stream sends them
to open pages; the plugin's migration branch matches its models on SQLite and MariaDB."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from console_lab import ServerThread
from pages_env import PagesEnv

import bhype_webui.plugin
from bhype_core.builtins import models as core_models
from bhype_core.db import migrate
from bhype_core.events import Event
from bhype_core.plugins import make_plugin_manager
from bhype_core.runtime import Runtime, build_runtime
from bhype_core.testing import make_settings
from bhype_webui import notify_store
from bhype_webui.notify_store import Viewer

ALICE, BOB, ROOT = Viewer("alice", False), Viewer("bob", False), Viewer("root", True)


@pytest.fixture
def runtime_for(tmp_path) -> Iterator[Callable[[str | None], Runtime]]:
    made: list[Runtime] = []

    def build(database_url: str | None = None) -> Runtime:
        pm = make_plugin_manager(load_entrypoints=False)
        pm.register_plugin(core_models, "core_models")
        pm.register_plugin(bhype_webui.plugin, "webui")
        core = {"database_url": database_url} if database_url else {}
        runtime = build_runtime(make_settings(tmp_path / f"data{len(made)}", core=core), pm)
        made.append(runtime)
        return runtime

    yield build
    for runtime in made:
        if "engine" in runtime.__dict__:
            runtime.engine.dispose()


@pytest.fixture
def runtime(runtime_for) -> Runtime:
    made = runtime_for(None)
    migrate.upgrade(made)
    return made


def event(user: str | None, message: str, **extra) -> Event:
    return Event(kind=extra.pop("kind", "task.failed"), message=message, severity=extra.pop("severity", "error"),
                 user=user, **extra)


def messages(rows) -> list[str]:
    return [row.message for row in rows]


def test_the_webui_branch_matches_its_models(database_url, runtime_for):
    made = runtime_for(database_url)
    assert "webui_0001" in migrate.upgrade(made)
    assert migrate.drift(made, all_tables=True) == []


def test_each_event_is_kept_for_its_user_and_admin_wide_ones_for_admins(runtime):
    data = {"task_id": "t1", "when": datetime.now(UTC)}  # not JSON: kept as its text
    for item in (event("alice", "alice's task failed", subject="vm:web1", data=data),
                 event(None, "task t9 was interrupted", kind="task.interrupted", severity="warning"),
                 event("bob", "bob's VM crashed", kind="vm.crashed")):
        assert runtime.notify(item) == []  # the hook delivered (a failure would be listed here)
    engine = runtime.engine
    assert messages(notify_store.list_notifications(engine, ALICE)[0]) == ["alice's task failed"]
    assert messages(notify_store.list_notifications(engine, BOB)[0]) == ["bob's VM crashed"]
    assert messages(notify_store.list_notifications(engine, ROOT)[0]) == ["task t9 was interrupted"]
    (row,) = notify_store.list_notifications(engine, ALICE)[0]
    assert row.subject == "vm:web1" and row.data["task_id"] == "t1" and isinstance(row.data["when"], str)

    assert notify_store.unread_count(engine, ALICE) == 1
    assert notify_store.mark_read(engine, ALICE) == row.id
    assert notify_store.unread_count(engine, ALICE) == 0
    assert notify_store.mark_read(engine, ALICE, up_to=0) == row.id  # the marker never moves back
    assert notify_store.unread_count(engine, BOB) == 1  # markers are per user


def test_old_notifications_are_dropped(runtime):
    old = event("alice", "long ago", time=datetime.now(UTC) - timedelta(days=40))
    notify_store.store_event(runtime.engine, old, keep_days=365)
    notify_store.store_event(runtime.engine, event("alice", "today"), keep_days=30)
    assert messages(notify_store.list_notifications(runtime.engine, ALICE)[0]) == ["today"]


def test_a_notification_without_a_runtime_is_skipped_not_raised():
    bhype_webui.plugin.bhype_notify(event("alice", "nowhere to keep it"), None)


@pytest.fixture
def served(tmp_path) -> Iterator[tuple[PagesEnv, ServerThread]]:
    env = PagesEnv(tmp_path, webui={"stream_poll_seconds": 0.05})
    server = ServerThread(env.app).start()
    yield env, server
    server.stop()
    env.close()


def read_events(client: httpx.Client, url: str, wanted: int) -> list[tuple[str, dict]]:
    """The first ``wanted`` named events of a Server-Sent Events stream."""
    found: list[tuple[str, dict]] = []
    name = ""
    with client.stream("GET", url, timeout=30) as response:
        assert response.status_code == 200 and response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event: "):
                name = line.removeprefix("event: ")
            elif line.startswith("data: ") and name:
                found.append((name, json.loads(line.removeprefix("data: "))))
                if len(found) == wanted:
                    break
    return found


def session_client(env: PagesEnv, server: ServerThread, user: str, role: str = "operator") -> httpx.Client:
    test_client = env.client(user, role)
    client = httpx.Client(base_url=server.http, cookies=dict(test_client.cookies))
    client.headers["X-CSRF-Token"] = test_client.csrf  # type: ignore[attr-defined]
    return client


def test_the_api_lists_marks_read_and_streams_only_your_notifications(served):
    env, server = served
    alice, bob = session_client(env, server, "alice"), session_client(env, server, "bob")
    env.runtime.notify(event("alice", "alice 1"))
    env.runtime.notify(event("bob", "bob 1"))
    env.runtime.notify(event("alice", "alice 2"))

    listed = alice.get("/api/v1/webui/notifications").json()
    assert [n["message"] for n in listed["notifications"]] == ["alice 2", "alice 1"] and listed["unread"] == 2
    # From the start: alice's stream sends her two, never bob's (his sits between them).
    events = read_events(alice, "/api/v1/webui/notifications/stream?after=0", 2)
    assert [(name, data["message"]) for name, data in events] == [("notification", "alice 1"),
                                                                    ("notification", "alice 2")]
    (only,) = read_events(bob, "/api/v1/webui/notifications/stream?after=0", 1)
    assert only[1]["message"] == "bob 1"
    # Resuming after the last id a page has: only what is newer.
    env.runtime.notify(event("alice", "alice 3", severity="critical"))
    (newest,) = read_events(alice, f"/api/v1/webui/notifications/stream?after={events[-1][1]['id']}", 1)
    assert newest[1]["message"] == "alice 3" and newest[1]["severity"] == "critical"

    marked = alice.post("/api/v1/webui/notifications/read", json={"up_to": events[-1][1]["id"]}).json()
    assert marked["unread"] == 1
    assert [n["message"] for n in alice.get("/api/v1/webui/notifications?unread=true").json()["notifications"]] \
        == ["alice 3"]
    assert bob.get("/api/v1/webui/notifications").json()["unread"] == 1


def test_a_stream_tells_the_page_when_its_session_ends(served):
    env, server = served
    alice = session_client(env, server, "alice")
    with alice.stream("GET", "/api/v1/webui/notifications/stream", timeout=60) as response:
        assert alice.post("/api/v1/auth/logout").status_code == 204
        lines = []
        for line in response.iter_lines():
            lines.append(line)
            if line == "event: logout":
                break
    assert "event: logout" in lines
    assert alice.get("/api/v1/webui/notifications/stream").status_code == 401  # and it cannot come back


def test_a_stream_ends_when_its_session_times_out(tmp_path):
    env = PagesEnv(tmp_path, webui={"stream_poll_seconds": 0.05},
                   auth={"session_idle_timeout": 4, "session_absolute_timeout": 4})
    server = ServerThread(env.app).start()
    try:
        alice = session_client(env, server, "alice")
        with alice.stream("GET", "/api/v1/webui/notifications/stream", timeout=30) as response:
            assert response.status_code == 200
            assert "event: logout" in [line for line in response.iter_lines() if line.startswith("event:")]
    finally:
        server.stop()
        env.close()
