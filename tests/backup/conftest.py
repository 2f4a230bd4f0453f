"""Backup plugin fixtures: a runtime with only the backup plugin (and one over a migrated database)."""

from __future__ import annotations

import pytest

import bhype_backup.plugin
import bhype_core.builtins.models as core_models
from bhype_core.db.migrate import upgrade
from bhype_core.runtime import build_runtime
from bhype_core.testing import make_settings
from bhype_core.testing.netns import netns  # noqa: F401  (fixture)


@pytest.fixture
def backup_runtime(tmp_path, plugin_manager, register_plugin):
    """``backup_runtime(**backup_section)`` → a runtime whose only plugin is ``backup``."""
    register_plugin(bhype_backup.plugin, "backup")

    def build(**backup):
        return build_runtime(make_settings(tmp_path / "data", backup=backup), plugin_manager)

    return build


@pytest.fixture
def backup_db_runtime(backup_runtime, register_plugin):
    """``backup_db_runtime(**backup_section)`` → like ``backup_runtime``, over a migrated database
    (the core's tables: ``core_fact`` for the probe, ``core_task`` for refreshes)."""
    register_plugin(core_models, "core_models")
    built = []

    def build(**backup):
        runtime = backup_runtime(**backup)
        upgrade(runtime)
        built.append(runtime)
        return runtime

    yield build
    for runtime in built:
        runtime.engine.dispose()


@pytest.fixture
def world(tmp_path, local_user):
    """A backup host (see ``tests/backup/world.py``): all plugins, the queue in this thread."""
    from .world import close_world, make_world

    built = make_world(tmp_path, local_user)
    yield built
    close_world(built)
