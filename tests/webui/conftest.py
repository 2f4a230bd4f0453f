"""Web UI plugin fixtures: a runtime with only the webui plugin."""

from __future__ import annotations

import pytest

import bhype_webui.plugin
from bhype_core.runtime import build_runtime
from bhype_core.testing import make_settings


@pytest.fixture
def webui_runtime(tmp_path, plugin_manager, register_plugin):
    """``webui_runtime(runner=None, **webui_section)`` → a runtime whose only plugin is ``webui``."""
    register_plugin(bhype_webui.plugin, "webui")

    def build(runner=None, **webui):
        sections = {"webui": webui}
        if runner:
            sections["runner"] = runner
        return build_runtime(make_settings(tmp_path / "data", **sections), plugin_manager)

    return build
