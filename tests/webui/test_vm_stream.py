"""Live VM states for the pages (``/api/v1/webui/vms/stream``): a change to a VM row reaches the
streams of the users who may see it, and nobody else's; a new or removed VM changes the count."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from console_lab import ServerThread
from pages_env import PagesEnv
from sqlmodel import Session

from bhype_core.vm.records import find_vm, set_state


@pytest.fixture
def served(tmp_path) -> Iterator[tuple[PagesEnv, ServerThread]]:
    env = PagesEnv(tmp_path, webui={"stream_poll_seconds": 0.05})
    server = ServerThread(env.app).start()
    yield env, server
    server.stop()
    env.close()


def client_of(env: PagesEnv, server: ServerThread, user: str, role: str = "operator") -> httpx.Client:
    return httpx.Client(base_url=server.http, cookies=dict(env.client(user, role).cookies), timeout=30)


def change(env: PagesEnv, name: str, state: str, detail: str = "") -> None:
    with Session(env.runtime.engine) as db:
        row = find_vm(db, name)
        assert row is not None
        set_state(db, row, state, detail)
        db.commit()


def next_events(response: httpx.Response, wanted: int) -> list[tuple[str, dict[str, Any]]]:
    """The next ``wanted`` named events (a stream's lines can be iterated only once: keep one)."""
    lines = response.extensions.setdefault("bhype_lines", response.iter_lines())
    found, name = [], ""
    for line in lines:
        if line.startswith("event: "):
            name = line.removeprefix("event: ")
        elif line.startswith("data: ") and name:
            found.append((name, json.loads(line.removeprefix("data: "))))
            if len(found) == wanted:
                return found
    return found


def test_a_state_change_reaches_only_those_who_may_see_the_vm(served):
    env, server = served
    (mine,) = env.add_vms("alice", 1)
    (theirs,) = env.add_vms("bob", 1)
    with client_of(env, server, "bob").stream("GET", "/api/v1/webui/vms/stream") as bob, \
            client_of(env, server, "root", "admin").stream("GET", "/api/v1/webui/vms/stream") as admin:
        assert bob.status_code == admin.status_code == 200
        change(env, mine, "running")
        change(env, theirs, "crashed", "exit status 4")
        (event,) = next_events(bob, 1)
        assert event[0] == "vm" and event[1]["name"] == theirs  # alice's change never reached bob
        assert (event[1]["state"], event[1]["state_detail"]) == ("crashed", "exit status 4")
        both = next_events(admin, 2)
        assert [(e[1]["name"], e[1]["state"]) for e in both] == [(mine, "running"), (theirs, "crashed")]


def test_one_vm_can_be_followed_and_a_new_vm_changes_the_count(served):
    env, server = served
    first, second = env.add_vms("alice", 2)
    alice = client_of(env, server, "alice")
    with alice.stream("GET", "/api/v1/webui/vms/stream", params={"name": second}) as one, \
            alice.stream("GET", "/api/v1/webui/vms/stream") as every:
        change(env, first, "running")
        change(env, second, "starting")
        (event,) = next_events(one, 1)
        assert (event[1]["name"], event[1]["state"]) == (second, "starting")
        assert [e[1]["name"] for e in next_events(every, 2)] == [first, second]
        (new,) = env.add_vms("alice", 1, prefix="new")
        created, counted = next_events(every, 2)
        assert created[0] == "vm" and created[1]["name"] == new  # the list page refreshes on "count"
        assert counted == ("count", {"total": 3})


def test_since_must_be_a_time_with_a_zone(served):
    env, server = served
    alice = client_of(env, server, "alice")
    bad = alice.get("/api/v1/webui/vms/stream", params={"since": "yesterday"})
    assert bad.status_code == 422 and bad.json()["error"]["fields"][0]["path"] == "since"
    naive = alice.get("/api/v1/webui/vms/stream", params={"since": "2025-01-01T00:00:00"})
    assert naive.status_code == 422 and "time zone" in naive.json()["error"]["message"]


def test_a_vm_of_a_host_that_stops_heartbeating_turns_unknown_live(tmp_path):
    """Issue 22: no reload needed: when a group host turns unreachable its VMs' rows get a ``vm``
    event saying ``unknown`` (why in ``state_detail``), and their real state when it is back."""
    from datetime import timedelta

    from sqlalchemy import update
    from sqlmodel import col

    from bhype_core.db.models import utcnow
    from bhype_core.hosts.models import Host
    from bhype_core.hosts.registry import register
    from bhype_core.vm.models import VM

    env = PagesEnv(tmp_path, webui={"stream_poll_seconds": 0.05}, host={"name": "alpha", "unreachable_after": 60})
    server = ServerThread(env.app).start()
    try:
        here, there = env.add_vms("alice", 2, state="running")
        register(env.runtime)
        with env.runtime.engine.begin() as connection:
            connection.execute(update(VM).where(col(VM.name) == there).values(host="beta"))
            connection.execute(Host.__table__.insert().values(
                name="beta", address="beta", platform="linux", hypervisor="qemu", capacity={}, versions={},
                task_kinds=[], registered=utcnow(), last_seen=utcnow()))

        def beta_seen(seconds_ago: int) -> None:
            with env.runtime.engine.begin() as connection:
                connection.execute(update(Host).where(col(Host.name) == "beta")
                                   .values(last_seen=utcnow() - timedelta(seconds=seconds_ago)))

        with client_of(env, server, "alice").stream("GET", "/api/v1/webui/vms/stream") as stream:
            assert stream.status_code == 200
            change(env, here, "running", "first")  # a row change: proves the stream is past its start
            assert [e[1]["name"] for e in next_events(stream, 1)] == [here]
            beta_seen(600)  # beta's worker went silent ten minutes ago
            ((kind, gone),) = next_events(stream, 1)
            assert (kind, gone["name"], gone["state"], gone["host"]) == ("vm", there, "unknown", "beta")
            assert gone["state_detail"] == "host beta is unreachable; last known state: running"
            beta_seen(0)  # it heartbeats again
            ((kind, back),) = next_events(stream, 1)
            assert (kind, back["name"], back["state"]) == ("vm", there, "running")
    finally:
        server.stop()
        env.close()
