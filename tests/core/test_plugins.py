"""The plugin manager factory: registration, blocking and what ``bhype plugins`` shows."""

from __future__ import annotations

import importlib.metadata as metadata

from bhype_core import __version__
from bhype_core.hookspecs import hookimpl
from bhype_core.plugins import incompatibility, make_plugin_manager


class NotifyPlugin:
    @hookimpl
    def bhype_notify(self, event):
        pass


class WrongSignature:
    @hookimpl
    def bhype_notify(self, event, extra_argument):
        pass


class FakeDistribution(metadata.Distribution):
    def __init__(self, name: str, version: str, requires: list[str]):
        self._files = {
            "METADATA": f"Metadata-Version: 2.1\nName: {name}\nVersion: {version}\n"
            + "".join(f"Requires-Dist: {line}\n" for line in requires)
        }

    def read_text(self, filename):
        return self._files.get(filename)

    def locate_file(self, path):
        return path


def test_infos_show_hooks_and_origin():
    pm = make_plugin_manager(load_entrypoints=False, plugins=[("notifier", NotifyPlugin())])
    (info,) = pm.infos()
    assert info.to_dict() == {
        "name": "notifier",
        "distribution": None,
        "version": None,
        "status": "active",
        "reason": "",
        "hooks": ["bhype_notify"],
    }


def test_disabled_plugins_are_blocked_and_shown():
    pm = make_plugin_manager(load_entrypoints=False, disabled=["notifier"], plugins=[("notifier", NotifyPlugin())])
    (info,) = pm.infos()
    assert info.status == "blocked" and info.reason == "disabled by configuration"
    assert not pm.has_plugin("notifier")


def test_a_plugin_that_breaks_a_hook_contract_is_blocked():
    pm = make_plugin_manager(load_entrypoints=False, plugins=[("wrong", WrongSignature())])
    (info,) = pm.infos()
    assert info.status == "blocked" and "extra_argument" in info.reason


def test_builtins_come_from_the_cores_own_entry_points():
    pm = make_plugin_manager(load_entrypoints=True)
    names = {info.name: info for info in pm.infos()}
    assert {"core_models", "core_tasks", "core_doctor"} <= set(names)
    assert names["core_tasks"].distribution == "bhype-core"
    assert names["core_tasks"].version == __version__


def test_the_iso_library_is_its_own_builtin_plugin(tmp_path):
    """The ISO library registers as ``core_isos``, the switches as ``core_network`` (issue 12):
    disabling one leaves the other's task kinds in place."""
    from bhype_core.runtime import build_runtime
    from bhype_core.testing import make_settings

    def kinds(disabled):
        pm = make_plugin_manager(load_entrypoints=True, disabled=disabled)
        return set(build_runtime(make_settings(tmp_path / "data"), pm).registry.tasks.names())

    assert {"iso.fetch", "iso.import", "iso.delete", "switch.create"} <= kinds([])
    without_isos = kinds(["core_isos"])
    assert "switch.create" in without_isos and not {"iso.fetch", "iso.import", "iso.delete"} & without_isos
    without_network = kinds(["core_network"])
    assert "iso.fetch" in without_network and "switch.create" not in without_network


def test_core_version_range_is_checked():
    ok = FakeDistribution("bhype-good", "1.0", [f"bhype-core>={__version__}"])
    too_new = FakeDistribution("bhype-future", "2.0", ["bhype-core>=99"])
    undeclared = FakeDistribution("bhype-vague", "1.0", ["pluggy"])
    assert incompatibility(ok) is None
    reason = incompatibility(too_new)
    assert "needs bhype-core>=99" in reason and f"this is bhype-core {__version__}" in reason
    assert "does not declare" in incompatibility(undeclared)
