"""Hostops fixtures: a migrated runtime with the hostops plugin, and real test admins."""

from __future__ import annotations

import pytest

import bhype_core.builtins.models as core_models
import bhype_hostops.plugin
from bhype_core.db.migrate import upgrade
from bhype_core.runtime import build_runtime
from bhype_core.testing import make_settings


@pytest.fixture
def hostops_runtime(tmp_path, plugin_manager, register_plugin, bhype_roles):
    """``hostops_runtime(**hostops_section)`` → a migrated runtime (SQLite under ``tmp_path``)
    whose plugins are the core's models and ``hostops``; ``.admin`` is a real admin account."""
    register_plugin(core_models, "core_models")
    register_plugin(bhype_hostops.plugin, "hostops")
    built = []

    def build(sections: dict | None = None, **hostops):
        settings = make_settings(tmp_path / "data", hostops=hostops, auth=bhype_roles.auth_section(),
                                 **(sections or {}))
        runtime = build_runtime(settings, plugin_manager)
        upgrade(runtime)
        runtime.extras["admin"] = bhype_roles.admin()
        built.append(runtime)
        return runtime

    yield build
    for runtime in built:
        if "queue" in runtime.__dict__:
            runtime.queue.scheduler.lease.release()
