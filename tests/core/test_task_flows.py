"""Scheduled runs, sub-tasks, resumable tasks and samplers in real ``python -m bhype_core.tasks.worker``
processes (a test plugin installed through a real ``bhype`` entry point). Order and overlap are
judged from the Task rows and the files the plugin writes, never from wall-clock thresholds."""

from __future__ import annotations

import importlib.metadata as metadata
import shutil
import signal
from pathlib import Path

import pytest

import bhype_core.builtins.models as core_models
import bhype_core.builtins.tasks as core_tasks
from bhype_core.api.principal import Principal
from bhype_core.db.migrate import upgrade
from bhype_core.db.task_models import FINAL_STATES, Task
from bhype_core.plugins import make_plugin_manager
from bhype_core.runtime import build_runtime
from bhype_core.tasks import service, store
from bhype_core.tasks.system import SYSTEM_OWNER
from bhype_core.testing.queue import queue_config, settings_from
from bhype_core.testing.waiting import wait_for

pytestmark = pytest.mark.slow

PLUGIN = Path(__file__).resolve().parents[1] / "fake_plugins" / "taskflow_plugin.py"
ADMIN = Principal("root", "admin")
ALICE = Principal("alice", "operator")
BOB = Principal("bob", "operator")


@pytest.fixture
def flow(tmp_path: Path) -> dict:
    """The worker's extra environment: the test plugin as an installed distribution, and the
    directory its files land in (``env["TASKFLOW_DIR"]``)."""
    site = tmp_path / "site"
    info = site / "bhype_test_taskflow-0.1.dist-info"
    info.mkdir(parents=True)
    shutil.copy(PLUGIN, site / "bhype_test_taskflow.py")
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: bhype-test-taskflow\nVersion: 0.1\nRequires-Dist: bhype-core>=0.1\n"
    )
    (info / "entry_points.txt").write_text("[bhype]\ntest_taskflow = bhype_test_taskflow\n")
    out = tmp_path / "out"
    out.mkdir()
    return {"PYTHONPATH": str(site), "TASKFLOW_DIR": str(out)}


def config(tmp_path: Path, workers: int = 2, per_user: int = 2, database_url: str = "") -> dict:
    raw = queue_config(tmp_path / "data", "sqlite")
    if database_url:
        raw["core"]["database_url"] = database_url
    raw["queue"]["workers"] = workers
    raw["tasks"] = {"poll_interval": 0.5, "sweep_interval": 1.0, "per_user_limit": per_user}
    # Only the core's built-ins and the test plugin: what is tested here is the task queue.
    raw["core"]["disabled_plugins"] = sorted(
        {ep.name for ep in metadata.entry_points(group="bhype") if not ep.name.startswith("core_")}
    )
    return raw


def client(raw: dict):
    """The API process's view (core tables and kinds; the test plugin's kinds are the
    worker's business, so they are submitted by storing rows through a runtime that has them)."""
    import importlib
    import sys

    plugins = [("core_models", core_models), ("core_tasks", core_tasks)]
    sys.path.insert(0, str(PLUGIN.parent))
    try:
        plugins.append(("test_taskflow", importlib.import_module("taskflow_plugin")))
    finally:
        sys.path.remove(str(PLUGIN.parent))
    runtime = build_runtime(settings_from(raw), make_plugin_manager(load_entrypoints=False, plugins=plugins))
    upgrade(runtime)
    return runtime


def row(runtime, task_id: str) -> Task:
    task = store.get_task(runtime.engine, task_id)
    assert task is not None
    return task


def ended(runtime, task_id: str) -> Task:
    return wait_for(lambda: (task := row(runtime, task_id)).state in FINAL_STATES and task, f"task {task_id} to end")


def messages(runtime, task_id: str) -> list[str]:
    return [line.message for line in store.read_log(runtime.engine, task_id)]


def test_a_scheduled_run_is_a_system_task_that_waits_for_its_lock_and_logs(tmp_path, flow, start_worker):
    raw = config(tmp_path)
    runtime = client(raw)
    holder = service.submit(runtime, ALICE, "core.ping", {"sleep": 600, "locks": ["vm:p"]})
    worker = start_worker(raw, env={**flow, "TASKFLOW_PERIODIC": "1"})  # submits test.scheduled at start
    scheduled = wait_for(lambda: store.list_tasks(runtime.engine, owner=SYSTEM_OWNER, kind="core.ping"),
                         "the scheduled run's Task row")[0]
    assert scheduled.arguments == {"echo": "scheduled", "locks": ["vm:p"]} and scheduled.locks == ["vm:p"]
    waiting = f"waiting for lock vm:p held by task {holder.id}"
    wait_for(lambda: row(runtime, scheduled.id).progress_message == waiting, "the scheduled run to wait")
    assert row(runtime, scheduled.id).state == "queued"
    # Visible in the task list like any task: to admins, and by its owner's name.
    assert scheduled.id in [task.id for task in service.list_visible(runtime, ADMIN, user=SYSTEM_OWNER)]
    assert scheduled.id not in [task.id for task in service.list_visible(runtime, ALICE)]

    service.cancel(runtime, ALICE, holder.id)
    done, released = ended(runtime, scheduled.id), ended(runtime, holder.id)
    assert (done.state, done.owner, done.result["echo"]) == ("succeeded", SYSTEM_OWNER, "scheduled")
    assert done.started >= released.finished  # it never held vm:p alongside alice's task
    assert messages(runtime, scheduled.id) == ["ping from system"]
    assert "periodic job test.scheduled: the run at start is task " + scheduled.id in worker.log_text()


def test_sub_tasks_run_in_order_in_the_parents_slot_with_its_lock(tmp_path, flow, start_worker):
    # One worker thread and one running task per user: the children can only run in the
    # parent's own slot, and take the parent's own lock vm:c.
    raw = config(tmp_path, workers=1, per_user=1)
    runtime = client(raw)
    start_worker(raw, env=flow)
    parent = service.submit(runtime, ALICE, "test.chain", {"vm": "c", "steps": ["stop", "copy", "start"]})
    done = ended(runtime, parent.id)
    assert done.state == "succeeded", done.error
    ids = [child_id for child_id, _, _ in done.result["outcomes"]]
    assert [(state, echo) for _, state, echo in done.result["outcomes"]] == [
        ("succeeded", "stop"), ("succeeded", "copy"), ("succeeded", "start")]
    children = [row(runtime, child_id) for child_id in ids]
    assert {(child.parent_id, child.owner, child.kind) for child in children} == {(parent.id, "alice", "core.ping")}
    for earlier, later in zip(children, children[1:], strict=False):
        assert later.started >= earlier.finished  # one after the other
    assert done.started <= children[0].started and children[-1].finished <= done.finished
    assert {child.worker_pid for child in children} == {done.worker_pid}
    assert [task.id for task in store.children_of(runtime.engine, parent.id)] == ids
    assert f"sub-task core.ping {ids[0]} queued" in messages(runtime, parent.id)


def test_cancelling_a_parent_cancels_the_sub_task_it_waits_for(tmp_path, flow, start_worker):
    raw = config(tmp_path)
    runtime = client(raw)
    start_worker(raw, env=flow)
    busy = service.submit(runtime, BOB, "core.ping", {"sleep": 600, "locks": ["vm:busy"]})
    wait_for(lambda: "sleeping 600 s" in messages(runtime, busy.id), "bob's task to hold vm:busy")
    parent = service.submit(runtime, ALICE, "test.chain", {"vm": "c2", "steps": ["copy"], "child_locks": ["vm:busy"]})
    child = wait_for(lambda: store.children_of(runtime.engine, parent.id), "the sub-task")[0]
    waiting = f"waiting for lock vm:busy held by task {busy.id}"
    wait_for(lambda: row(runtime, child.id).progress_message == waiting, "the sub-task to wait for vm:busy")

    service.cancel(runtime, ALICE, parent.id)
    assert ended(runtime, parent.id).state == "cancelled"
    assert ended(runtime, child.id).state == "cancelled"
    assert row(runtime, child.id).started is None  # it never ran
    service.cancel(runtime, BOB, busy.id)
    ended(runtime, busy.id)


@pytest.mark.parametrize("database", ["sqlite", pytest.param("mariadb", marks=pytest.mark.mariadb)])
def test_a_resumable_task_resumes_from_its_checkpoint_after_kill_9(tmp_path, flow, start_worker, request, database):
    url = request.getfixturevalue("fresh_mariadb_url") if database == "mariadb" else ""
    raw = config(tmp_path, database_url=url)
    runtime = client(raw)
    steps_log = Path(flow["TASKFLOW_DIR"]) / "steps.log"
    gate = tmp_path / "gate"
    first = start_worker(raw, env=flow)
    task = service.submit(runtime, ALICE, "test.steps", {"gate": str(gate)})
    wait_for(lambda: steps_log.exists() and "two" in steps_log.read_text(), "steps one and two")
    wait_for(lambda: (row(runtime, task.id).checkpoint or {}).get("step") == "two", "the checkpoint of step two")

    first.send_signal(signal.SIGKILL)
    first.wait()
    gate.touch()
    second = start_worker(raw, env=flow)
    done = ended(runtime, task.id)
    assert done.state == "succeeded", done.error
    assert done.result == {"resumed_from": "two", "done": ["one", "two", "three"]}
    assert steps_log.read_text().split("\n")[:-1] == [f"{first.pid} one", f"{first.pid} two", f"{second.pid} three"]
    log = messages(runtime, task.id)
    assert "queued again to resume: the worker running it stopped" in log
    assert "resuming from step 'two' after its worker stopped" in log
    assert done.worker_pid == second.pid


def test_a_sampler_ticks_in_one_worker_per_host_and_moves_when_it_dies(tmp_path, flow, start_worker):
    raw = config(tmp_path)
    env = {**flow, "TASKFLOW_SAMPLER": "1"}
    samples = Path(flow["TASKFLOW_DIR"]) / "samples.log"
    workers = [start_worker(raw, env=env), start_worker(raw, env=env)]

    def pids() -> list[int]:
        return [int(line) for line in samples.read_text().split()] if samples.exists() else []

    wait_for(lambda: len(pids()) >= 6, "six ticks")
    (leader_pid,) = set(pids())  # only one worker on this host ticks
    leader = next(worker for worker in workers if worker.pid == leader_pid)
    other = next(worker for worker in workers if worker.pid != leader_pid)
    wait_for(lambda: "sampler test.sampler tick failed (2 so far); it goes on" in leader.log_text(),
             "the second failed tick to be counted")
    assert "sampler test.sampler every 0.2s in this worker" not in other.log_text()

    leader.send_signal(signal.SIGKILL)
    leader.wait()
    wait_for(lambda: other.pid in pids(), "the other worker to take the sampler over")
    assert "sampler test.sampler every 0.2s in this worker (plugin test_taskflow)" in other.log_text()
