"""Monitor plugin fixtures: a runtime with only the monitor plugin."""

from __future__ import annotations

import pytest

import bhype_monitor.plugin
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
