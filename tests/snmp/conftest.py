"""SNMP plugin fixtures: a runtime with only the snmp plugin; managers; a stopped sender."""

from __future__ import annotations

import pytest

import bhype_snmp.plugin
from bhype_core.builtins import models
from bhype_core.db.migrate import upgrade
from bhype_core.runtime import build_runtime
from bhype_core.testing import make_settings
from bhype_snmp.sender import EXTRAS_KEY


@pytest.fixture
def snmp_runtime(tmp_path, plugin_manager, register_plugin):
    """``snmp_runtime(runner=None, sections=None, **snmp_section)`` → a migrated runtime whose plugins are the
    core's tables and ``snmp`` (its sender thread, if one started, is stopped after the test)."""
    register_plugin(models, "core_models")
    register_plugin(bhype_snmp.plugin, "snmp")
    built = []

    def build(runner=None, sections=None, **snmp):
        sections = {**(sections or {}), "snmp": snmp}
        if runner:
            sections["runner"] = runner
        runtime = build_runtime(make_settings(tmp_path / "data", **sections), plugin_manager)
        upgrade(runtime)
        built.append(runtime)
        return runtime

    yield build
    for runtime in built:
        sender = runtime.extras.get(EXTRAS_KEY)
        if sender is not None:
            sender.stop()
