"""Redis restarted and MariaDB restarted during activity (issue 22): three real worker processes
(hosts h1, h2, h3) run tasks submitted across the hosts while the server is stopped and
started again. Every task ends exactly once (each appends its id to a file: the side effects
are counted), the workers reconnect without being restarted, and each logs the outage once
instead of a traceback per retry.

The servers restarted are the test's own (:mod:`bhype_core.testing.private_servers`), never
the machine's shared ones. The Redis keeps nothing across its restart: the start messages
it held are lost, and recovery finds their rows and queues them again.
"""

from __future__ import annotations

import importlib
import importlib.metadata as metadata
import shutil
import sys
from collections import Counter
from pathlib import Path

import pytest

import bhype_core.builtins.hosts as core_hosts
import bhype_core.builtins.models as core_models
import bhype_core.builtins.tasks as core_tasks
from bhype_core.api.principal import Principal
from bhype_core.db.migrate import upgrade
from bhype_core.db.task_models import FINAL_STATES, RUNNING, Task
from bhype_core.plugins import make_plugin_manager
from bhype_core.runtime import build_runtime
from bhype_core.tasks import service, store
from bhype_core.testing.queue import settings_from
from bhype_core.testing.waiting import wait_for

pytestmark = [pytest.mark.slow, pytest.mark.mariadb]

PLUGIN = Path(__file__).resolve().parents[1] / "fake_plugins" / "taskflow_plugin.py"
HOSTS = ("h1", "h2", "h3")
ALICE = Principal("alice", "operator")
PER_HOST = 12  # tasks per host per round


@pytest.fixture
def flow(tmp_path: Path) -> dict:
    """The workers' extra environment: the test plugin (``test.append``) as an installed
    distribution, and the directory its files land in."""
    site = tmp_path / "site"
    info = site / "bhype_test_taskflow-0.1.dist-info"
    info.mkdir(parents=True)
    shutil.copy(PLUGIN, site / "bhype_test_taskflow.py")
    (info / "METADATA").write_text(
        "Metadata-Version: 2.1\nName: bhype-test-taskflow\nVersion: 0.1\nRequires-Dist: bhype-core>=0.1\n")
    (info / "entry_points.txt").write_text("[bhype]\ntest_taskflow = bhype_test_taskflow\n")
    out = tmp_path / "out"
    out.mkdir()
    return {"PYTHONPATH": str(site), "TASKFLOW_DIR": str(out)}


def host_config(tmp_path: Path, name: str, database_url: str, redis_url: str, queue: str) -> dict:
    return {
        "core": {"data_dir": str(tmp_path / name), "database_url": database_url, "redis_url": redis_url,
                 "disabled_plugins": sorted({ep.name for ep in metadata.entry_points(group="bhype")
                                             if not ep.name.startswith("core_")})},
        # Two threads, six slots: four started tasks wait in Redis at any time, so a restart of
        # a Redis without persistence loses start messages for sure.
        "queue": {"backend": "redis", "name": queue, "workers": 2},
        "tasks": {"poll_interval": 0.3, "sweep_interval": 1.0, "max_running": 6, "per_user_limit": 6},
        "host": {"name": name, "heartbeat_interval": 0.3, "unreachable_after": 5},
    }


def submitter(raw: dict):
    """The API process's view: the core's tables and the test plugin's kinds, as host h1."""
    sys.path.insert(0, str(PLUGIN.parent))
    try:
        plugin = importlib.import_module("taskflow_plugin")
    finally:
        sys.path.remove(str(PLUGIN.parent))
    plugins = [("core_models", core_models), ("core_tasks", core_tasks), ("core_hosts", core_hosts),
               ("test_taskflow", plugin)]
    runtime = build_runtime(settings_from(raw), make_plugin_manager(load_entrypoints=False, plugins=plugins))
    upgrade(runtime)
    return runtime


def submit_round(runtime, sleep: float = 0.3) -> list[str]:
    """``PER_HOST`` ``test.append`` tasks for each host, interleaved."""
    return [service.submit(runtime, ALICE, "test.append", {"sleep": sleep}, host=host).id
            for _ in range(PER_HOST) for host in HOSTS]


def rows(runtime, ids: list[str]) -> dict[str, Task]:
    return {task_id: store.get_task(runtime.engine, task_id) for task_id in ids}


def count_final(runtime, ids: list[str]) -> int:
    return sum(1 for task in rows(runtime, ids).values() if task is not None and task.state in FINAL_STATES)


def side_effects(flow: dict) -> Counter:
    path = Path(flow["TASKFLOW_DIR"]) / "append.log"
    return Counter(path.read_text().split()) if path.exists() else Counter()


def waiting_messages(url: str, prefix: str) -> int:
    """Messages waiting in the hosts' queues (huey's sorted sets whose key holds ``prefix``)."""
    import redis

    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        return sum(client.zcard(key) for key in client.scan_iter(match=f"*{prefix}*")
                   if client.type(key) == b"zset")
    finally:
        client.close()


def start_group(tmp_path, start_worker, flow, database_url: str, redis_url: str, queue: str):
    configs = {name: host_config(tmp_path, name, database_url, redis_url, queue) for name in HOSTS}
    runtime = submitter(configs["h1"])
    workers = {name: start_worker(configs[name], env=flow) for name in HOSTS}
    wait_for(lambda: {row.name for row in registered(runtime)} == set(HOSTS), "three hosts to register")
    return runtime, workers


def registered(runtime):
    from sqlmodel import Session, select

    from bhype_core.hosts.models import Host

    with Session(runtime.engine) as session:
        return list(session.exec(select(Host)))


def judge(runtime, workers, flow, ids: list[str], server: str) -> None:
    """Every task succeeded exactly once on its own host; the same worker processes still run;
    each logged the outage and the recovery instead of a traceback per retry."""
    ended = wait_for(lambda: count_final(runtime, ids) == len(ids) and rows(runtime, ids),
                     f"all {len(ids)} tasks to end", timeout=240,
                     detail=lambda: Counter(task.state for task in rows(runtime, ids).values()))
    assert {task.state for task in ended.values()} == {"succeeded"}, [
        (task.id, task.state, task.error) for task in ended.values() if task.state != "succeeded"]
    assert all(task.worker_host == task.host for task in ended.values())
    effects = side_effects(flow)
    assert {task_id: effects[task_id] for task_id in ids} == dict.fromkeys(ids, 1)  # none lost, none twice
    for name, worker in workers.items():
        assert worker.process.poll() is None, f"worker {name} exited:\n{worker.log_text()}"
        text = worker.log_text()
        assert "cannot use the server" in text and "the server works again" in text, text
        assert text.count("Traceback") <= 1, f"worker {name} logged tracebacks during the {server} outage:\n{text}"
    assert not [task for task in rows(runtime, ids).values() if task.state == RUNNING]


def test_redis_restarted_without_persistence_loses_nothing_and_runs_nothing_twice(
        tmp_path, start_worker, flow, fresh_mariadb_url, private_redis, redis_prefix):
    runtime, workers = start_group(tmp_path, start_worker, flow, fresh_mariadb_url, private_redis.url, redis_prefix)
    ids = submit_round(runtime, sleep=0.5)
    # Stopped while started tasks' messages wait in the queues (six slots, two threads a host).
    wait_for(lambda: waiting_messages(private_redis.url, redis_prefix) >= 3, "start messages waiting in Redis",
             detail=lambda: Counter(task.state for task in rows(runtime, ids).values()))
    # Tasks are submitted while Redis is down (their nudges fail: the rows are safe).
    private_redis.stop()
    assert not private_redis.ready()
    ids += submit_round(runtime)
    private_redis.start()
    ids += submit_round(runtime, sleep=0.05)
    judge(runtime, workers, flow, ids, "Redis")
    # Started tasks waited in Redis when it stopped (six slots, two threads per host): their
    # messages were lost, recovery queued them again, and they still ran once.
    lost = [task_id for task_id in ids if any("queue message was lost" in line.message
                                              for line in store.read_log(runtime.engine, task_id))]
    assert lost
    runtime.engine.dispose()


def test_mariadb_restarted_during_activity_loses_nothing_and_runs_nothing_twice(
        tmp_path, start_worker, flow, private_mariadb, redis_url, redis_prefix):
    runtime, workers = start_group(tmp_path, start_worker, flow, private_mariadb.url, redis_url, redis_prefix)
    ids = submit_round(runtime, sleep=0.5)
    wait_for(lambda: count_final(runtime, ids) >= len(HOSTS) * 2, "the first tasks to end")
    # Tasks are running and started ones wait in Redis while the database goes away: their
    # pick-ups and ends wait for it.
    private_mariadb.restart(down_for=3.0)
    ids += submit_round(runtime, sleep=0.05)
    judge(runtime, workers, flow, ids, "MariaDB")
    runtime.engine.dispose()
