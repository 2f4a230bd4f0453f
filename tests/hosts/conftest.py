"""Fixtures for the host group tests: a migrated runtime with the core's built-ins and ``core_hosts``."""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from bhype_core.builtins import drivers as core_drivers
from bhype_core.builtins import hosts as core_hosts
from bhype_core.builtins import models as core_models
from bhype_core.builtins import network as core_network
from bhype_core.builtins import storage as core_storage
from bhype_core.builtins import tasks as core_tasks
from bhype_core.builtins import vm_tasks as core_vms
from bhype_core.db.migrate import upgrade
from bhype_core.plugins import make_plugin_manager
from bhype_core.runtime import Runtime, build_runtime
from bhype_core.testing import make_settings

BUILTINS = [("core_models", core_models), ("core_storage", core_storage), ("core_drivers", core_drivers),
            ("core_tasks", core_tasks), ("core_vms", core_vms), ("core_network", core_network),
            ("core_hosts", core_hosts)]


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A short directory under /tmp (VM directories hold unix sockets: 108 bytes, unix(7))."""
    path = Path(tempfile.mkdtemp(prefix="bh-", dir="/tmp"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def make_host_runtime(short_dir: Path) -> Iterator[Callable[..., Runtime]]:
    """``make_host_runtime(name, **sections)``: a migrated SQLite runtime whose ``[host] name``
    is ``name`` (all of them share one database file, as hosts of a group share MariaDB)."""
    runtimes: list[Runtime] = []

    def build(name: str, **sections: Any) -> Runtime:
        data = short_dir / name
        core = {"data_dir": str(data), "database_url": f"sqlite:///{short_dir / 'group.sqlite3'}",
                **sections.pop("core", {})}
        vm = {"datastores": {"default": {"path": str(data / "ds")}}}
        settings = make_settings(data, core=core, vm=vm, host={"name": name, **sections.pop("host", {})},
                                 **sections)
        runtime = build_runtime(settings, make_plugin_manager(load_entrypoints=False, plugins=BUILTINS))
        upgrade(runtime)
        runtimes.append(runtime)
        return runtime

    yield build
    for runtime in runtimes:
        if "engine" in runtime.__dict__:
            runtime.engine.dispose()


@pytest.fixture
def host_builtins() -> list[tuple[str, Any]]:
    """The ``(name, module)`` pairs of the built-ins these tests' API runtimes load."""
    return list(BUILTINS)
