"""The event-kind catalog: the core's kinds are always there, plugins declare theirs with
``bhype_register_event_kinds`` (a clash names both plugins), ``GET /api/v1/event-kinds`` and
``plugin_api.event_kinds`` read it, and delivering an undeclared kind warns (an error here)."""

from __future__ import annotations

import warnings

import pytest
from fastapi.testclient import TestClient

from bhype_core.api.app import create_app
from bhype_core.errors import PluginError
from bhype_core.event_kinds import CORE_EVENT_KINDS, EventKind, UnknownEventKindWarning
from bhype_core.events import Event
from bhype_core.hookspecs import hookimpl
from bhype_core.plugin_api import event_kinds
from bhype_core.runtime import build_runtime
from bhype_core.testing import act_as, make_settings


class Backups:
    @hookimpl
    def bhype_register_event_kinds(self, register):
        register(EventKind("backup.failed", "error", "A backup run failed.", {"vm": "the VM", "target": "where to"}))


class Inbox:
    def __init__(self):
        self.events = []

    @hookimpl
    def bhype_notify(self, event):
        self.events.append(event.kind)


def test_the_catalog_holds_the_core_kinds_then_each_plugins(tmp_path, plugin_manager, register_plugin):
    register_plugin(Backups(), "backup")
    runtime = build_runtime(make_settings(tmp_path), plugin_manager)
    names = [kind.name for kind in event_kinds(runtime)]
    assert names == [*(kind.name for kind in CORE_EVENT_KINDS), "backup.failed"]
    assert {"task.failed", "task.interrupted", "task.cleaned_up", "host.orphans_removed", "vm.crashed"} <= set(names)
    assert runtime.registry.event_kinds.plugin_of("vm.crashed") == "core"
    assert runtime.registry.event_kinds.plugin_of("backup.failed") == "backup"
    assert runtime.registry.event_kinds["backup.failed"].fields == {"vm": "the VM", "target": "where to"}


def test_the_core_kinds_cover_every_event_the_core_raises():
    """Each core module that builds an ``Event`` uses a declared kind."""
    from bhype_core.drivers.base import VMState, VMStatus, crash_event
    from bhype_core.tasks.executor import failed_event
    from bhype_core.tasks.recovery import interrupted_event

    class FakeTask:
        id, kind, target, owner, worker_host, worker_pid = "t1", "vm.start", "vm:web1", "alice", "h", 1

    declared = {kind.name for kind in CORE_EVENT_KINDS}
    raised = [failed_event(FakeTask(), {"message": "boom"}), interrupted_event(FakeTask()),
              crash_event("web1", VMStatus(VMState.CRASHED, exit_status=4, detail="exit 4"))]
    for event in raised:
        assert event.kind in declared
        assert set(event.data) <= set(next(k for k in CORE_EVENT_KINDS if k.name == event.kind).fields)


def test_a_plugin_redeclaring_a_core_kind_names_both(tmp_path, plugin_manager, register_plugin):
    class Squatter:
        @hookimpl
        def bhype_register_event_kinds(self, register):
            register(EventKind("task.failed", "info", "mine now"))

    register_plugin(Squatter(), "squatter")
    with pytest.raises(PluginError, match="event kind 'task.failed' is registered by both plugin 'core' "
                                          "and plugin 'squatter'"):
        build_runtime(make_settings(tmp_path), plugin_manager)


def test_a_kind_needs_a_known_severity_and_a_dotted_name():
    with pytest.raises(ValueError, match="severity must be one of"):
        EventKind("backup.failed", "fatal", "x")
    with pytest.raises(ValueError, match="must be dotted"):
        EventKind("failed", "error", "x")


def test_an_undeclared_kind_warns_and_is_still_delivered(tmp_path, plugin_manager, register_plugin):
    inbox = register_plugin(Inbox(), "popups")
    runtime = build_runtime(make_settings(tmp_path), plugin_manager)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")  # production's behaviour (the suite makes it an error)
        assert runtime.notify(Event(kind="backup.failed", message="no target")) == []
    assert [type(w.message) for w in caught] == [UnknownEventKindWarning]
    assert "'backup.failed' is not registered" in str(caught[0].message)
    assert inbox.events == ["backup.failed"]


def test_in_the_test_suite_an_undeclared_kind_is_an_error(tmp_path, plugin_manager):
    runtime = build_runtime(make_settings(tmp_path), plugin_manager)
    with pytest.raises(UnknownEventKindWarning):
        runtime.notify(Event(kind="backup.failed", message="no target"))
    assert runtime.notify(Event(kind="vm.crashed", message="web1 exited")) == []  # declared: fine


def test_the_api_lists_the_catalog(tmp_path, plugin_manager, register_plugin):
    register_plugin(Backups(), "backup")
    app = create_app(runtime=build_runtime(make_settings(tmp_path), plugin_manager))
    act_as(app, "alice", "operator")
    with TestClient(app) as client:
        body = client.get("/api/v1/event-kinds").json()
    kinds = {kind["name"]: kind for kind in body["event_kinds"]}
    assert kinds["backup.failed"] == {
        "name": "backup.failed", "severity": "error", "description": "A backup run failed.",
        "fields": {"vm": "the VM", "target": "where to"}, "plugin": "backup",
    }
    assert kinds["task.failed"]["plugin"] == "core" and "error" in kinds["task.failed"]["fields"]
