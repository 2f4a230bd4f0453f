"""``bhype task list|show|follow|cancel|retry`` against a real uvicorn server on loopback with
real API tokens and an in-process worker: tables, JSON, live following, one-line errors."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import bhype_core.builtins.models as core_models
import bhype_core.builtins.tasks as core_tasks
from bhype_core import cli
from bhype_core.auth.principal import Principal
from bhype_core.commands.task_follow import parse_events
from bhype_core.db.migrate import upgrade
from bhype_core.plugins import make_plugin_manager
from bhype_core.runtime import build_runtime
from bhype_core.tasks import service, store
from bhype_core.testing.api_server import served_cli
from bhype_core.testing.queue import queue_config, settings_from

pytestmark = pytest.mark.slow

WAIT = 60.0


@pytest.fixture
def server(tmp_path: Path, monkeypatch) -> Iterator[dict]:
    """The API in a uvicorn thread plus a worker thread; the CLI is alice (operator) through
    $BHYPE_URL and $BHYPE_TOKEN."""
    raw = queue_config(tmp_path / "data", "sqlite")
    raw["tasks"] = {"poll_interval": 0.2, "stream_interval": 0.05}
    plugins = [("core_models", core_models), ("core_tasks", core_tasks)]
    runtime = build_runtime(settings_from(raw), make_plugin_manager(load_entrypoints=False, plugins=plugins))
    upgrade(runtime)
    try:
        users = (("alice", "operator"), ("bob", "operator"), ("root", "admin"))
        with served_cli(runtime, tmp_path, monkeypatch, users, as_user="alice") as server:
            yield server
    finally:
        runtime.engine.dispose()


def bhype(server, capsys, *args: str) -> tuple[int, str, str]:
    status = cli.main(["--config", str(server["config"]), "task", *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_follow_prints_the_log_live_and_exits_with_the_outcome(server, capsys):
    runtime = server["runtime"]
    task = service.submit(runtime, Principal("alice", "operator"), "core.ping", {"echo": "x", "sleep": 0.3})
    status, out, _ = bhype(server, capsys, "follow", task.id)
    assert status == 0
    lines = out.splitlines()
    assert lines[-1] == f"task {task.id} succeeded"
    logged = [line.strip().split(" ", 2)[-1] for line in lines if line.startswith("  ")]
    assert logged == ["ping from alice", "sleeping 0.3 s"]
    assert "[100%] succeeded: done" in lines

    failing = service.submit(runtime, Principal("alice", "operator"), "core.ping", {"fail": "disk full"})
    status, out, _ = bhype(server, capsys, "follow", failing.id)
    assert status == 1
    assert out.splitlines()[-1] == f"task {failing.id} failed: disk full"
    assert any(" ERROR failed: PingFailed: disk full" in line for line in out.splitlines())


def test_list_show_and_json(server, capsys):
    runtime = server["runtime"]
    mine = service.submit(runtime, Principal("alice", "operator"), "core.ping", {"locks": ["vm:4"]})
    theirs = service.submit(runtime, Principal("bob", "operator"), "core.ping", {})
    bhype(server, capsys, "follow", mine.id)

    status, out, _ = bhype(server, capsys, "list")
    assert status == 0
    header, *rows = out.splitlines()
    assert header.split() == ["id", "owner", "kind", "target", "state", "progress", "created", "message"]
    assert [row.split()[:6] for row in rows] == [[mine.id, "alice", "core.ping", "vm:4", "succeeded", "100%"]]

    status, out, _ = bhype(server, capsys, "list", "--json")
    assert [task["id"] for task in json.loads(out)] == [mine.id]

    status, out, _ = bhype(server, capsys, "show", mine.id)
    assert status == 0
    assert f"task      {mine.id}" in out and "state     succeeded" in out and "log:" in out
    assert "ping from alice" in out
    assert json.loads(bhype(server, capsys, "show", mine.id, "--json")[1])["log"][0]["seq"] == 1

    # Another user's task: not found, one line, no traceback.
    status, _, err = bhype(server, capsys, "show", theirs.id)
    assert status == 1 and err == f"bhype: error: no task {theirs.id}\n"

    status, out, _ = bhype(server, capsys, "list", "--user", "bob", "--token", server["tokens"]["root"])
    assert status == 0 and theirs.id in out and mine.id not in out


def test_cancel_and_retry(server, capsys):
    runtime = server["runtime"]
    sleeper = service.submit(runtime, Principal("alice", "operator"), "core.ping", {"sleep": 600, "locks": ["vm:8"]})
    queued = service.submit(runtime, Principal("alice", "operator"), "core.ping", {"locks": ["vm:8"]})
    deadline = time.monotonic() + WAIT
    while not any(line.message == "sleeping 600 s" for line in store.read_log(runtime.engine, sleeper.id)):
        assert time.monotonic() < deadline, "the sleeper never ran"
        time.sleep(0.05)

    status, out, _ = bhype(server, capsys, "cancel", queued.id)
    assert (status, out) == (0, f"task {queued.id} cancelled\n")
    status, out, _ = bhype(server, capsys, "cancel", sleeper.id)
    assert (status, out) == (0, f"task {sleeper.id} is running: asked to stop at its next safe point\n")
    status, out, _ = bhype(server, capsys, "follow", sleeper.id)
    assert status == 1 and out.splitlines()[-1] == f"task {sleeper.id} cancelled: task {sleeper.id} was cancelled"
    status, _, err = bhype(server, capsys, "cancel", sleeper.id)
    assert status == 1 and err == f"bhype: error: task {sleeper.id} has already ended (cancelled)\n"

    status, out, _ = bhype(server, capsys, "retry", queued.id, "--follow")
    assert status == 0
    first, *_, last = out.splitlines()
    new_id = first.split()[1]
    assert first == f"task {new_id} queued (retry of {queued.id})"
    assert last == f"task {new_id} succeeded"
    assert store.get_task(runtime.engine, new_id).retry_of == queued.id


def test_without_a_valid_token_the_cli_says_how_to_log_in(server, capsys):
    status, _, err = bhype(server, capsys, "list", "--token", "bhype_not-a-token")
    assert status == 1
    assert err.startswith("bhype: error: invalid or revoked API token")
    assert "bhype login" in err


def test_parse_events_reads_the_event_stream_format():
    text = ": keep-alive\n\nid: 3\nevent: log\ndata: {\"seq\": 3}\n\nevent: end\ndata: null\n\n"
    events = list(parse_events(iter(text.splitlines(keepends=True))))
    assert [(e.event, e.id, e.data) for e in events] == [("log", "3", {"seq": 3}), ("end", None, None)]
