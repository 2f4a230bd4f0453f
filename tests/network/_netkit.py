"""Helpers for the switch tests: every bridge, tap, veth and guest lives inside network
namespaces the test creates (``ip netns add``) and deletes (the namespace helpers live in the
core's test kit, :mod:`bhype_core.testing.netns`); nothing touches the root namespace's links
or sends traffic from it."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest

import bhype_core.builtins.isos as core_isos
import bhype_core.builtins.models as core_models
import bhype_core.builtins.network as core_network
import bhype_core.builtins.storage as core_storage
import bhype_core.builtins.tasks as core_tasks
import bhype_core.builtins.vm_tasks as core_vms
from bhype_core.db.migrate import upgrade
from bhype_core.plugins import make_plugin_manager
from bhype_core.runtime import Runtime, build_runtime
from bhype_core.tasks import MemoryReporter, TaskContext
from bhype_core.testing import make_settings
from bhype_core.testing.netns import (  # noqa: F401  (the switch tests import these from here)
    NetnsRunner,
    in_ns,
    links,
    netns,
    pings,
    reaches,
    veth_into,
)


@pytest.fixture
def network_runtime(tmp_path: Path) -> Iterator[Runtime]:
    """A runtime with the core built-ins (SQLite, migrated); tests swap its runner."""
    pm = make_plugin_manager(load_entrypoints=False, plugins=[
        ("core_models", core_models), ("core_tasks", core_tasks), ("core_storage", core_storage),
        ("core_vms", core_vms), ("core_network", core_network), ("core_isos", core_isos),
    ])
    runtime = build_runtime(make_settings(tmp_path / "data", core={"platform": "linux"}), pm)
    upgrade(runtime)
    yield runtime
    queue = runtime.__dict__.get("queue")
    if queue is not None and queue._scheduler is not None:
        queue.scheduler.lease.release()
    runtime.engine.dispose()


def run_queued(runtime: Runtime) -> int:
    """Start what may start (one scheduler pass), then run every queued message (the tasks,
    and the passes their ends trigger) in this thread."""
    runtime.queue.scheduler.run_pass()
    count = 0
    while (message := runtime.queue.huey.dequeue()) is not None:
        runtime.queue.huey.execute(message)
        count += 1
    return count


def task_context(runtime: Runtime, kind: str, user: str = "root") -> TaskContext:
    """A context to run a task kind directly (its log and progress kept in memory)."""
    return TaskContext(runtime, f"test-{secrets.token_hex(4)}", kind, user, MemoryReporter())
