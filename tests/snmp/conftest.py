"""SNMP plugin fixtures: a runtime with only the snmp plugin."""

from __future__ import annotations

import pytest

import bhype_snmp.plugin
from bhype_core.runtime import build_runtime
from bhype_core.testing import make_settings


@pytest.fixture
def snmp_runtime(tmp_path, plugin_manager, register_plugin):
    """``snmp_runtime(runner=None, **snmp_section)`` → a runtime whose only plugin is ``snmp``."""
    register_plugin(bhype_snmp.plugin, "snmp")

    def build(runner=None, **snmp):
        sections = {"snmp": snmp}
        if runner:
            sections["runner"] = runner
        return build_runtime(make_settings(tmp_path / "data", **sections), plugin_manager)

    return build
