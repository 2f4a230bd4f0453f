"""Monitor plugin fixtures: a runtime with only the monitor plugin (and one over a migrated database)."""

from __future__ import annotations

import pytest

import bhype_core.builtins.models as core_models
import bhype_monitor.plugin
from bhype_core.db.migrate import upgrade
from bhype_core.runtime import build_runtime
from bhype_core.testing import make_settings


@pytest.fixture
def monitor_runtime(tmp_path, plugin_manager, register_plugin):
    """``monitor_runtime(runner=None, **monitor_section)`` → a runtime whose only plugin is ``monitor``."""
    register_plugin(bhype_monitor.plugin, "monitor")

    def build(runner=None, **monitor):
        sections = {"monitor": monitor}
        if runner:
            sections["runner"] = runner
        return build_runtime(make_settings(tmp_path / "data", **sections), plugin_manager)

    return build


@pytest.fixture
def monitor_db_runtime(monitor_runtime, register_plugin):
    """``monitor_db_runtime(runner=None, **monitor_section)`` → like ``monitor_runtime``, over a
    migrated database (the core's tables: ``core_fact`` for the probe, ``core_task`` for refreshes)."""
    register_plugin(core_models, "core_models")
    built = []

    def build(runner=None, **monitor):
        runtime = monitor_runtime(runner, **monitor)
        upgrade(runtime)
        built.append(runtime)
        return runtime

    yield build
    for runtime in built:
        runtime.engine.dispose()


@pytest.fixture
def vm_monitor_runtime(tmp_path, register_plugin):
    """``vm_monitor_runtime(*extra_plugins, **sections)`` → a migrated runtime with the core's VM
    built-ins and the monitor plugin (QEMU driver on Linux; the datastore under a short path)."""
    import shutil
    import tempfile
    from pathlib import Path

    from bhype_core.builtins import drivers, models, network, storage, tasks, vm_tasks
    from bhype_core.plugins import make_plugin_manager

    root = Path(tempfile.mkdtemp(prefix="bhm-", dir="/tmp"))
    built = []

    def build(*extra, **sections):
        core = {"data_dir": str(root / "data"), "platform": "linux", **sections.pop("core", {})}
        vm = {"datastores": {"default": {"path": str(root / "ds")}}, **sections.pop("vm", {})}
        settings = make_settings(root / "data", core=core, vm=vm, **sections)
        plugins = [("core_models", models), ("core_storage", storage), ("core_drivers", drivers),
                   ("core_tasks", tasks), ("core_vms", vm_tasks), ("core_network", network),
                   ("monitor", bhype_monitor.plugin), *extra]
        runtime = build_runtime(settings, make_plugin_manager(load_entrypoints=False, plugins=plugins))
        upgrade(runtime)
        built.append(runtime)
        return runtime

    yield build
    for runtime in built:
        runtime.engine.dispose()
    shutil.rmtree(root, ignore_errors=True)
