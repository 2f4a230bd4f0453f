"""The per-user task queue end to end: real ``python -m bhype_core.tasks.worker`` processes on the
embedded SQLite queue (SQLite database) and on real Redis (MariaDB database). FIFO, limits,
fairness, locks, cancel and crash recovery are judged from the times recorded in the Task
rows, never from wall-clock thresholds."""

from __future__ import annotations

import importlib.metadata as metadata
import json
import re
import signal
import time
from datetime import datetime
from pathlib import Path

import pytest

import bhype_core.builtins.models as core_models
import bhype_core.builtins.tasks as core_tasks
from bhype_core.api.principal import Principal
from bhype_core.db.migrate import upgrade
from bhype_core.db.models import utcnow
from bhype_core.db.task_models import FINAL_STATES, Task
from bhype_core.plugins import make_plugin_manager
from bhype_core.runtime import build_runtime
from bhype_core.tasks import service, store
from bhype_core.testing.queue import queue_config, settings_from

pytestmark = pytest.mark.slow

WAIT = 120.0  # seconds; generous for a loaded 2-core machine, never a timing assertion
ALICE = Principal("alice", "operator")
BOB = Principal("bob", "operator")
CAROL = Principal("carol", "operator")

RECORDER = '''
"""Test plugin loaded through a real entry point: appends every event to a JSON-lines file."""
import json, os
from bhype_core.hookspecs import hookimpl

@hookimpl
def bhype_notify(event):
    with open(os.environ["TASK_EVENTS_FILE"], "a") as events:
        events.write(json.dumps(event.to_dict()) + "\\n")
'''


@pytest.fixture
def event_recorder(tmp_path: Path) -> tuple[dict[str, str], Path]:
    """A plugin distribution on PYTHONPATH (module + dist-info with a ``bhype`` entry point),
    so the worker process loads it like any installed plugin. Returns the worker's extra
    environment and the file the events land in."""
    site = tmp_path / "site"
    info = site / "bhype_test_events-0.1.dist-info"
    info.mkdir(parents=True)
    (site / "bhype_test_events.py").write_text(RECORDER)
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: bhype-test-events\nVersion: 0.1\nRequires-Dist: bhype-core>=0.1\n"
    )
    (info / "entry_points.txt").write_text("[bhype]\ntest_events = bhype_test_events\n")
    events = tmp_path / "events.jsonl"
    return {"PYTHONPATH": str(site), "TASK_EVENTS_FILE": str(events)}, events


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=[pytest.mark.redis, pytest.mark.mariadb])])
def backend(request, tmp_path: Path) -> dict:
    """Raw configuration: SQLite queue + SQLite database, or Redis queue + MariaDB database."""
    if request.param == "redis":
        raw = queue_config(tmp_path / "data", "redis", redis_url=request.getfixturevalue("redis_url"),
                           name=request.getfixturevalue("redis_prefix"))
        raw["core"]["database_url"] = request.getfixturevalue("fresh_mariadb_url")
    else:
        raw = queue_config(tmp_path / "data", "sqlite")
    raw["tasks"] = {"poll_interval": 0.5, "sweep_interval": 2.0}
    # The worker runs the core's built-ins (and the test's event recorder): what is tested here
    # is the task queue, not whichever other plugins happen to be installed.
    raw["core"]["disabled_plugins"] = sorted(
        {ep.name for ep in metadata.entry_points(group="bhype") if not ep.name.startswith("core_")}
    )
    return raw


def client_runtime(raw: dict):
    """The API process's view (core tables and kinds only), with the database migrated."""
    plugins = [("core_models", core_models), ("core_tasks", core_tasks)]
    runtime = build_runtime(settings_from(raw), make_plugin_manager(load_entrypoints=False, plugins=plugins))
    upgrade(runtime)
    return runtime


def with_limits(raw: dict, workers: int, per_user: int) -> dict:
    raw = {name: dict(values) for name, values in raw.items()}
    raw["queue"]["workers"] = workers
    raw["tasks"]["per_user_limit"] = per_user
    return raw


def wait_for(condition, what: str, timeout: float = WAIT):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def rows(runtime, tasks: list[Task]) -> list[Task]:
    return [store.get_task(runtime.engine, task.id) for task in tasks]


def all_ended(runtime, tasks: list[Task]) -> list[Task] | None:
    current = rows(runtime, tasks)
    return current if all(task.state in FINAL_STATES for task in current) else None


def logged(runtime, task: Task, text: str) -> bool:
    return any(line.message == text for line in store.read_log(runtime.engine, task.id))


def max_overlap(intervals: list[tuple[datetime, datetime]]) -> int:
    """The most intervals that are open at one instant (an end before a start at a tie)."""
    points = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals],
                    key=lambda point: (point[0], point[1]))
    open_now = peak = 0
    for _, change in points:
        open_now += change
        peak = max(peak, open_now)
    return peak


def test_fifo_per_user_limits_and_locks(backend, start_worker):
    raw = with_limits(backend, workers=3, per_user=2)
    runtime = client_runtime(raw)
    worker = start_worker(raw)
    submitted = []
    for n in range(5):
        submitted.append(service.submit(runtime, ALICE, "core.ping", {"echo": n, "sleep": 0.2}))
        if n % 2:
            submitted.append(service.submit(runtime, BOB, "core.ping", {"sleep": 0.2, "locks": ["vm:1"]}))
    submitted.append(service.submit(runtime, CAROL, "core.ping", {"sleep": 0.2, "locks": ["vm:1", "pool:p"]}))
    submitted.append(service.submit(runtime, ALICE, "core.ping", {"locks": ["vm:1"]}))

    done = wait_for(lambda: all_ended(runtime, submitted), "every task to end")
    assert {task.state for task in done} == {"succeeded"}
    assert {task.worker_pid for task in done} == {worker.pid}
    for owner in ("alice", "bob"):
        mine = [task for task in done if task.owner == owner]
        by_start = sorted(mine, key=lambda task: task.started)
        assert [task.id for task in by_start] == [task.id for task in mine], f"{owner}: FIFO"
        assert max_overlap([(task.started, task.finished) for task in mine]) <= 2, f"{owner}: limit"
    assert max_overlap([(task.started, task.finished) for task in done]) <= 3  # worker slots
    on_vm1 = sorted((task for task in done if "vm:1" in task.locks), key=lambda task: task.started)
    assert len(on_vm1) == 4
    for earlier, later in zip(on_vm1, on_vm1[1:], strict=False):
        assert later.started >= earlier.finished, "two tasks held vm:1 at once"


def test_fairness_another_users_first_task_waits_at_most_one_slot(backend, start_worker):
    raw = with_limits(backend, workers=2, per_user=2)
    runtime = client_runtime(raw)
    start_worker(raw)
    alice = [service.submit(runtime, ALICE, "core.ping", {"echo": n, "sleep": 1.0}) for n in range(12)]
    wait_for(lambda: sum(task.state == "running" for task in rows(runtime, alice)) == 2, "alice holding both slots")
    bob = service.submit(runtime, BOB, "core.ping", {"echo": "first"})
    visible = utcnow()  # committed: every later pass sees bob's task

    done = wait_for(lambda: all_ended(runtime, [*alice, bob]), "every task to end")
    bob_row = done[-1]
    alice_rows = done[:-1]
    overtaking = [task for task in alice_rows if visible < task.started < bob_row.started]
    assert len(overtaking) <= 1, "alice's queue delayed bob's first task by more than one slot"
    # Meaningful only if alice still had a queue then: most of her tasks started after bob's.
    assert sum(task.started > bob_row.started for task in alice_rows) >= 5


def test_cancel_queued_and_running_tasks(backend, start_worker):
    runtime = client_runtime(backend)
    start_worker(backend)
    running = service.submit(runtime, ALICE, "core.ping", {"sleep": 600, "locks": ["vm:2"]})
    queued = service.submit(runtime, ALICE, "core.ping", {"locks": ["vm:2"]})
    wait_for(lambda: logged(runtime, running, "sleeping 600 s"), "the sleeper to run")
    # The dispatcher notes the wait on its next pass, which may come just after the sleeper starts.
    waiting = f"waiting for lock vm:2 held by task {running.id}"
    wait_for(lambda: store.get_task(runtime.engine, queued.id).progress_message == waiting, "the waiting note")
    assert store.get_task(runtime.engine, queued.id).state == "queued"

    assert service.cancel(runtime, ALICE, queued.id).state == "cancelled"
    assert service.cancel(runtime, ALICE, running.id).cancel_requested
    final = wait_for(lambda: all_ended(runtime, [running, queued]), "both to end")
    assert [task.state for task in final] == ["cancelled", "cancelled"]
    assert final[1].started is None and final[1].picked_up is None  # never ran
    assert final[0].error["code"] == "cancelled" and final[0].progress < 100
    assert [line.message for line in store.read_log(runtime.engine, running.id)][-2:] == [
        "cancel requested by alice", f"cancelled: task {running.id} was cancelled",
    ]


def test_kill_9_mid_task_then_restart_interrupts_it_and_frees_its_lock(backend, start_worker, event_recorder):
    env, events_file = event_recorder
    runtime = client_runtime(backend)
    first = start_worker(backend, env=env)
    victim = service.submit(runtime, ALICE, "core.ping", {"sleep": 600, "locks": ["vm:5"]})
    waiting = service.submit(runtime, BOB, "core.ping", {"echo": "after", "locks": ["vm:5"]})
    failing = service.submit(runtime, CAROL, "core.ping", {"fail": "disk full"})
    wait_for(lambda: logged(runtime, victim, "sleeping 600 s"), "the victim to run")
    wait_for(lambda: store.get_task(runtime.engine, failing.id).state == "failed", "the failure")
    # The worker sends a task's event just after it records the task final.
    wait_for(lambda: events_file.exists() and '"task.failed"' in events_file.read_text(), "the failure's event")

    first.send_signal(signal.SIGKILL)
    first.wait()
    assert store.get_task(runtime.engine, victim.id).state == "running"  # nobody left to say otherwise
    assert store.get_task(runtime.engine, waiting.id).state == "queued"

    second = start_worker(backend, env=env)
    victim_row, waiting_row = wait_for(lambda: all_ended(runtime, [victim, waiting]), "recovery")
    assert victim_row.state == "interrupted" and victim_row.error["code"] == "interrupted"
    assert victim_row.worker_pid == first.pid
    assert waiting_row.state == "succeeded" and waiting_row.worker_pid == second.pid
    assert waiting_row.started >= victim_row.finished  # vm:5 was released, not overrun
    assert store.read_log(runtime.engine, victim.id)[-1].message == "interrupted: the worker running it stopped"

    def recorded() -> list[dict]:
        return [json.loads(line) for line in events_file.read_text().splitlines()] if events_file.exists() else []

    events = wait_for(recorded, "events")
    by_kind = {event["kind"]: event for event in events}
    assert by_kind["task.failed"]["user"] == "carol"
    assert by_kind["task.failed"]["data"]["task_id"] == failing.id
    wait_for(lambda: "task.interrupted" in events_file.read_text(), "the interrupted event")
    interrupted = [json.loads(line) for line in events_file.read_text().splitlines()
                   if '"task.interrupted"' in line]
    # The worker's own start-up jobs (@system tasks) may have been running too when it died.
    users = [(event["user"], event["data"]["task_id"]) for event in interrupted if event["user"] != "@system"]
    assert users == [("alice", victim.id)]
    assert re.search(r"recovered tasks of stopped workers: \d+ requeued, [1-9]\d* interrupted", second.log_text())
