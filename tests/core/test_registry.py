"""Registration hooks: records are attributed to their plugin and clashes name both plugins."""

from __future__ import annotations

import pytest

from bhype_core.errors import PluginError
from bhype_core.hookspecs import hookimpl
from bhype_core.registry import CliCommand, DriverEntry, Registry, TaskKind


class AlphaPlugin:
    @hookimpl
    def bhype_register_drivers(self, register):
        register(DriverEntry(name="fake", factory=lambda runtime: "alpha-driver"))

    @hookimpl
    def bhype_register_tasks(self, register):
        register(TaskKind(name="alpha.work", run=lambda context: 1))


class BetaPlugin:
    @hookimpl
    def bhype_register_drivers(self, register):
        register(DriverEntry(name="fake", factory=lambda runtime: "beta-driver"))


class BrokenPlugin:
    @hookimpl
    def bhype_register_cli_commands(self, register):
        raise RuntimeError("boom")


def test_records_remember_their_plugin(register_plugin, plugin_manager):
    register_plugin(AlphaPlugin(), "alpha")
    registry = Registry.from_plugins(plugin_manager)
    assert registry.drivers["fake"].factory(None) == "alpha-driver"
    assert registry.drivers.plugin_of("fake") == "alpha"
    assert registry.tasks.names() == ["alpha.work"]
    assert "alpha.work" in registry.tasks and "nope" not in registry.tasks
    assert len(registry.cli_commands) == 0


def test_name_clash_is_a_start_up_error_naming_both_plugins(register_plugin, plugin_manager):
    register_plugin(AlphaPlugin(), "alpha")
    register_plugin(BetaPlugin(), "beta")
    with pytest.raises(PluginError) as caught:
        Registry.from_plugins(plugin_manager)
    assert "'alpha'" in caught.value.message and "'beta'" in caught.value.message
    assert "driver 'fake'" in caught.value.message


def test_a_plugin_failing_to_register_is_named(register_plugin, plugin_manager):
    register_plugin(BrokenPlugin(), "broken")
    with pytest.raises(PluginError, match="plugin 'broken' failed in bhype_register_cli_commands: boom"):
        Registry.from_plugins(plugin_manager)


def test_cli_command_record_is_usable(register_plugin, plugin_manager):
    class CliPlugin:
        @hookimpl
        def bhype_register_cli_commands(self, register):
            register(CliCommand("hello", "say hello", configure=lambda parser: None, run=lambda args: 0))

    register_plugin(CliPlugin(), "cli")
    command = Registry.from_plugins(plugin_manager).cli_commands["hello"]
    assert command.run(None) == 0 and command.help == "say hello"


def test_a_task_kind_that_declares_nothing_is_admin_only(register_plugin, plugin_manager):
    register_plugin(AlphaPlugin(), "alpha")
    kind = Registry.from_plugins(plugin_manager).tasks["alpha.work"]
    assert (kind.role, kind.authorize, kind.system) == ("admin", None, False)


def test_a_task_kind_with_an_unknown_role_stops_start_up(register_plugin, plugin_manager):
    class Sloppy:
        @hookimpl
        def bhype_register_tasks(self, register):
            register(TaskKind(name="sloppy.work", run=lambda context: 1, role="everyone"))

    register_plugin(Sloppy(), "sloppy")
    with pytest.raises(PluginError, match="'sloppy.work': role must be 'admin' or 'operator', not 'everyone'"):
        Registry.from_plugins(plugin_manager)
