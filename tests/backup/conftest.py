"""Backup plugin fixtures: a runtime with only the backup plugin."""

from __future__ import annotations

import pytest

import bhype_backup.plugin
from bhype_core.runtime import build_runtime
from bhype_core.testing import make_settings


@pytest.fixture
def backup_runtime(tmp_path, plugin_manager, register_plugin):
    """``backup_runtime(**backup_section)`` → a runtime whose only plugin is ``backup``."""
    register_plugin(bhype_backup.plugin, "backup")

    def build(**backup):
        return build_runtime(make_settings(tmp_path / "data", backup=backup), plugin_manager)

    return build
