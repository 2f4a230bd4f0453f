"""Fixtures for VM lifecycle tests: a runtime with the core's VM built-ins on a migrated
database (SQLite, and MariaDB where a test asks for ``database_url``), a datastore under a
short temporary directory, and task contexts that run task code in the test process."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bhype_core.builtins import drivers as core_drivers
from bhype_core.builtins import models as core_models
from bhype_core.builtins import storage as core_storage
from bhype_core.builtins import tasks as core_tasks
from bhype_core.builtins import vm_tasks as core_vms
from bhype_core.db.migrate import upgrade
from bhype_core.plugins import make_plugin_manager
from bhype_core.runtime import Runtime, build_runtime
from bhype_core.tasks import MemoryReporter, TaskContext
from bhype_core.testing import make_settings

BUILTINS = [
    ("core_models", core_models),
    ("core_storage", core_storage),
    ("core_drivers", core_drivers),
    ("core_tasks", core_tasks),
    ("core_vms", core_vms),
]


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A directory under /tmp with a short path: VM directories hold unix sockets (unix(7):
    108 bytes), and pytest's tmp_path can be longer than that."""
    path = Path(tempfile.mkdtemp(prefix="bh-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def make_vm_runtime(short_dir: Path) -> Iterator[Callable[..., Runtime]]:
    """``make_vm_runtime(*extra_plugins, database_url=None, **sections)``: a runtime with the
    VM built-ins (plus ``extra_plugins``, ``(name, plugin)`` pairs), migrated."""
    runtimes: list[Runtime] = []

    def build(*extra: tuple[str, Any], database_url: str | None = None, **sections: dict) -> Runtime:
        core = {"data_dir": str(short_dir / "data"), **sections.pop("core", {})}
        if database_url:
            core["database_url"] = database_url
        vm = {"datastores": {"default": {"path": str(short_dir / "ds")}}, **sections.pop("vm", {})}
        settings = make_settings(short_dir / "data", core=core, vm=vm, **sections)
        pm = make_plugin_manager(load_entrypoints=False, plugins=[*BUILTINS, *extra])
        runtime = build_runtime(settings, pm)
        upgrade(runtime)
        runtimes.append(runtime)
        return runtime

    yield build
    for runtime in runtimes:
        if "engine" in runtime.__dict__:
            runtime.engine.dispose()


@pytest.fixture
def vm_runtime(make_vm_runtime: Callable[..., Runtime]) -> Runtime:
    """The VM runtime with no extra plugins, on SQLite."""
    return make_vm_runtime()


class CancellingReporter(MemoryReporter):
    """Keeps the log in memory and reports a cancel request once ``cancel_when(progress)`` says
    so, the way the Task-row reporter reports a user's cancel."""

    def __init__(self, cancel_when: Callable[[Any], bool] | None = None) -> None:
        super().__init__()
        self.cancel_when = cancel_when
        self.cancelled = False

    def progress(self, context: TaskContext, progress: Any) -> None:
        super().progress(context, progress)
        if self.cancel_when is not None and self.cancel_when(progress):
            self.cancelled = True

    def cancel_requested(self, context: TaskContext) -> bool:
        return self.cancelled

    def text(self) -> str:
        return "\n".join(line.message for line in self.lines)


@pytest.fixture
def task_context() -> Callable[..., TaskContext]:
    """``task_context(runtime, kind, user="alice", cancel_when=None)``: a real TaskContext whose
    log and progress stay in memory (``context.reporter.text()``)."""
    counter = iter(range(1, 10_000))

    def build(runtime: Runtime, kind: str, user: str | None = "alice",
              cancel_when: Callable[[Any], bool] | None = None) -> TaskContext:
        return TaskContext(runtime, f"test-{next(counter)}", kind, user, CancellingReporter(cancel_when))

    return build
