"""Hooks exercised the way the core calls them: settings and routers through a real app, storage
backends and doctor checks through the registry, the VM lifecycle (veto and observe) through
``pm.hook``, and the isolated ``bhype_notify`` fan-out."""

from __future__ import annotations

import logging

import pluggy
import pytest
from fastapi import APIRouter
from fastapi.testclient import TestClient
from pydantic import Field

from bhype_core.api.app import create_app
from bhype_core.api.deps import RuntimeDep
from bhype_core.config import Section
from bhype_core.errors import ConfigError, Conflict, FieldError, PluginError, ValidationErrors
from bhype_core.event_kinds import EventKind
from bhype_core.events import DeliveryFailure, Event, notify
from bhype_core.hookspecs import hookimpl
from bhype_core.registry import (
    CheckResult,
    DoctorCheck,
    Registry,
    RouterEntry,
    SettingsSection,
    StorageBackendEntry,
)
from bhype_core.runtime import build_runtime
from bhype_core.testing import act_as, make_settings

# --------------------------------------------------------------------------------------------
# bhype_register_settings and bhype_register_routers


class GreeterSettings(Section):
    greeting: str = "hello"
    repeat: int = Field(1, ge=1, le=5)


class GreeterPlugin:
    @hookimpl
    def bhype_register_settings(self, register):
        register(SettingsSection("greeter", GreeterSettings))

    @hookimpl
    def bhype_register_routers(self, register):
        api = APIRouter()

        @api.get("/greeting")
        def greeting(runtime: RuntimeDep) -> dict:
            settings = runtime.settings.section("greeter")
            return {"text": " ".join([settings.greeting] * settings.repeat)}

        page = APIRouter()

        @page.get("/greeter-page")
        def greeter_page() -> dict:
            return {"mounted": "at the root"}

        register(RouterEntry("greeter", api))
        register(RouterEntry("greeter-page", page, prefix="/"))


def greeter_client(tmp_path, pm, **greeter) -> TestClient:
    app = create_app(runtime=build_runtime(make_settings(tmp_path, greeter=greeter), pm))
    act_as(app, "alice", "operator")  # the subject is the plugin's settings, not authentication
    return TestClient(app)


def test_registered_settings_reach_the_registered_router(tmp_path, plugin_manager, register_plugin):
    register_plugin(GreeterPlugin(), "greeter")
    with greeter_client(tmp_path, plugin_manager, repeat=2, greeting="moin") as client:
        assert client.get("/api/v1/greeter/greeting").json() == {"text": "moin moin"}
        assert client.get("/greeter-page").json() == {"mounted": "at the root"}


def test_registered_settings_are_validated_naming_the_key(tmp_path, plugin_manager, register_plugin):
    register_plugin(GreeterPlugin(), "greeter")
    with pytest.raises(ConfigError, match=r"greeter\.repeat: Input should be less than or equal to 5"):
        greeter_client(tmp_path, plugin_manager, repeat=9)


def test_without_the_plugin_its_routes_and_section_are_absent(tmp_path, plugin_manager):
    settings = make_settings(tmp_path, greeter={"repeat": 2})
    runtime = build_runtime(settings, plugin_manager)
    assert settings.unknown_sections() == ["greeter"]  # nobody reads [greeter]: shown, not validated
    with TestClient(create_app(runtime=runtime)) as client:
        assert client.get("/api/v1/greeter/greeting").status_code == 404
        assert client.get("/greeter-page").status_code == 404


# --------------------------------------------------------------------------------------------
# bhype_register_storage_backends and bhype_register_doctor_checks


class DirectoryStore:
    @hookimpl
    def bhype_register_storage_backends(self, register):
        register(StorageBackendEntry("dirs", factory=lambda runtime, options: ("dirs", options["path"])))


class OtherDirectoryStore:
    @hookimpl
    def bhype_register_storage_backends(self, register):
        register(StorageBackendEntry("dirs", factory=lambda runtime, options: None))


def test_storage_backends_are_collected_with_their_plugin(register_plugin, plugin_manager):
    register_plugin(DirectoryStore(), "store")
    registry = Registry.from_plugins(plugin_manager)
    assert registry.storage_backends.plugin_of("dirs") == "store"
    assert registry.storage_backends["dirs"].factory(None, {"path": "/vm"}) == ("dirs", "/vm")


def test_two_storage_backends_with_one_name_name_both_plugins(register_plugin, plugin_manager):
    register_plugin(DirectoryStore(), "store")
    register_plugin(OtherDirectoryStore(), "other-store")
    with pytest.raises(PluginError) as caught:
        Registry.from_plugins(plugin_manager)
    assert "storage backend 'dirs' is registered by both plugin" in caught.value.message
    assert "'store'" in caught.value.message and "'other-store'" in caught.value.message


class MarkerCheck:
    """Reads (never writes) whether a marker file exists under the data directory."""

    @hookimpl
    def bhype_register_doctor_checks(self, register):
        def run(settings):
            marker = settings.core.data_dir / "marker"
            found = marker.exists()
            return [CheckResult("marker", found, f"{marker} present: {found}", fix=f"touch {marker}")]

        register(DoctorCheck("example.marker", run=run, platforms=("linux", "freebsd")))
        register(DoctorCheck("example.bhyve-only", run=lambda settings: [], platforms=("freebsd",)))


def test_doctor_checks_are_collected_and_read_the_host(tmp_path, register_plugin, plugin_manager):
    register_plugin(MarkerCheck(), "marker")
    settings = make_settings(tmp_path)
    registry = Registry.from_plugins(plugin_manager)
    assert registry.doctor_checks.names() == ["example.marker", "example.bhyve-only"]
    assert registry.doctor_checks["example.bhyve-only"].platforms == ("freebsd",)
    check = registry.doctor_checks["example.marker"]
    (missing,) = check.run(settings)
    assert not missing.ok and missing.fix == f"touch {tmp_path / 'marker'}"
    (tmp_path / "marker").touch()
    (present,) = check.run(settings)
    assert present.ok


# --------------------------------------------------------------------------------------------
# VM lifecycle: bhype_vm_before_* may veto, bhype_vm_after_* observe

BEFORE_HOOKS = [
    "bhype_vm_before_create",
    "bhype_vm_before_start",
    "bhype_vm_before_stop",
    "bhype_vm_before_destroy",
]
AFTER_HOOKS = [
    "bhype_vm_after_create",
    "bhype_vm_after_start",
    "bhype_vm_after_stop",
    "bhype_vm_after_destroy",
]


class MemoryVeto:
    """Refuses any step for a VM asking for more memory than a (pretend) host has."""

    def _check(self, vm):
        errors = ValidationErrors()
        if vm["memory_mb"] > 4096:
            errors.add("memory_mb", f"{vm['memory_mb']} MiB is more than the 4096 MiB this host offers")
        errors.raise_if_any()

    @hookimpl
    def bhype_vm_before_create(self, vm, context):
        self._check(vm)

    @hookimpl
    def bhype_vm_before_start(self, vm, context):
        self._check(vm)

    @hookimpl
    def bhype_vm_before_stop(self, vm, context):
        self._check(vm)

    @hookimpl
    def bhype_vm_before_destroy(self, vm, context):
        self._check(vm)


class Observer:
    def __init__(self):
        self.seen = []

    def _see(self, step, vm, context):
        self.seen.append((step, vm["name"], context["task"]))

    @hookimpl
    def bhype_vm_before_create(self, vm, context):
        self._see("before_create", vm, context)

    @hookimpl
    def bhype_vm_before_start(self, vm, context):
        self._see("before_start", vm, context)

    @hookimpl
    def bhype_vm_before_stop(self, vm, context):
        self._see("before_stop", vm, context)

    @hookimpl
    def bhype_vm_before_destroy(self, vm, context):
        self._see("before_destroy", vm, context)

    @hookimpl
    def bhype_vm_after_create(self, vm, context):
        self._see("after_create", vm, context)

    @hookimpl
    def bhype_vm_after_start(self, vm, context):
        self._see("after_start", vm, context)

    @hookimpl
    def bhype_vm_after_stop(self, vm, context):
        self._see("after_stop", vm, context)

    @hookimpl
    def bhype_vm_after_destroy(self, vm, context):
        self._see("after_destroy", vm, context)


@pytest.mark.parametrize("hook_name", BEFORE_HOOKS)
def test_a_before_hook_veto_propagates_with_its_field_errors(plugin_manager, register_plugin, hook_name):
    register_plugin(MemoryVeto(), "memory-veto")
    hook = getattr(plugin_manager.hook, hook_name)
    with pytest.raises(ValidationErrors) as caught:
        hook(vm={"name": "big", "memory_mb": 8192}, context={"task": 7})
    expected = FieldError("memory_mb", "8192 MiB is more than the 4096 MiB this host offers")
    assert caught.value.errors == [expected]
    assert caught.value.to_dict()["error"]["fields"][0]["path"] == "memory_mb"
    assert hook(vm={"name": "small", "memory_mb": 512}, context={"task": 8}) == []  # no veto: step goes on


@pytest.mark.parametrize("hook_name", BEFORE_HOOKS)
def test_a_veto_stops_plugins_registered_earlier(plugin_manager, register_plugin, hook_name):
    observer = register_plugin(Observer(), "observer")
    register_plugin(MemoryVeto(), "memory-veto")  # pluggy calls the latest registration first
    with pytest.raises(ValidationErrors):
        getattr(plugin_manager.hook, hook_name)(vm={"name": "big", "memory_mb": 8192}, context={"task": 1})
    assert observer.seen == []
    plugin_manager.unregister(name="memory-veto")
    getattr(plugin_manager.hook, hook_name)(vm={"name": "big", "memory_mb": 8192}, context={"task": 2})
    assert observer.seen == [(hook_name.removeprefix("bhype_vm_"), "big", 2)]


def test_other_bhype_errors_veto_a_start_too(plugin_manager, register_plugin):
    class Busy:
        @hookimpl
        def bhype_vm_before_start(self, vm, context):
            raise Conflict(f"VM {vm['name']} is being backed up")

    register_plugin(Busy(), "busy")
    with pytest.raises(Conflict, match="VM web1 is being backed up"):
        plugin_manager.hook.bhype_vm_before_start(vm={"name": "web1"}, context={"task": 3})


@pytest.mark.parametrize("hook_name", AFTER_HOOKS)
def test_after_hooks_reach_every_observer(plugin_manager, register_plugin, hook_name):
    first = register_plugin(Observer(), "first")
    second = register_plugin(Observer(), "second")
    register_plugin(MemoryVeto(), "memory-veto")  # implements no after_ hook: not involved
    getattr(plugin_manager.hook, hook_name)(vm={"name": "web1", "memory_mb": 8192}, context={"task": 9})
    expected = [(hook_name.removeprefix("bhype_vm_"), "web1", 9)]
    assert first.seen == expected and second.seen == expected


# --------------------------------------------------------------------------------------------
# bhype_notify: one broken notifier never stops the others


class Inbox:
    def __init__(self):
        self.events = []

    @hookimpl
    def bhype_notify(self, event):
        self.events.append(event)


class BrokenMailer:
    @hookimpl
    def bhype_notify(self, event):
        raise ConnectionRefusedError("smtp 127.0.0.1:25 refused")


def test_notify_isolates_a_failing_plugin(plugin_manager, register_plugin, caplog):
    before = register_plugin(Inbox(), "popups")
    register_plugin(BrokenMailer(), "mail")
    after = register_plugin(Inbox(), "snmp")
    event = Event(kind="vm.crashed", message="web1 exited with status 4", severity="error", subject="vm:web1")
    with caplog.at_level(logging.ERROR, logger="bhype_core.events"):
        failures = notify(plugin_manager, event)
    assert before.events == [event] and after.events == [event]
    assert failures == [DeliveryFailure("mail", "ConnectionRefusedError: smtp 127.0.0.1:25 refused")]
    assert "plugin mail failed to deliver event vm.crashed" in caplog.text


def test_a_plain_hook_call_would_not_isolate(plugin_manager, register_plugin):
    """Why events go through ``notify``: pluggy itself stops at the first exception."""
    register_plugin(Inbox(), "popups")
    register_plugin(BrokenMailer(), "mail")
    with pytest.raises(ConnectionRefusedError):
        plugin_manager.hook.bhype_notify(event=Event(kind="task.failed", message="x"), runtime=None)


class PoolKinds:
    @hookimpl
    def bhype_register_event_kinds(self, register):
        register(EventKind("pool.degraded", "warning", "A pool lost redundancy.", {"pool": "its name"}))


def test_runtime_notify_delivers_through_the_same_fan_out(tmp_path, plugin_manager, register_plugin):
    register_plugin(PoolKinds(), "pools")
    inbox = register_plugin(Inbox(), "popups")
    runtime = build_runtime(make_settings(tmp_path), plugin_manager)
    event = Event(kind="pool.degraded", message="tank is DEGRADED", severity="warning")
    assert runtime.notify(event) == [] and inbox.events == [event]


class ConfiguredInbox(Inbox):
    """A notifier that needs its settings: it asks for ``runtime`` too."""

    @hookimpl
    def bhype_register_settings(self, register):
        register(SettingsSection("greeter", GreeterSettings))

    @hookimpl
    def bhype_notify(self, event, runtime):
        self.events.append(f"{runtime.settings.section('greeter').greeting}: {event.message}")


def test_a_notifier_asking_for_the_runtime_gets_its_settings(tmp_path, plugin_manager, register_plugin):
    inbox = register_plugin(ConfiguredInbox(), "configured")
    runtime = build_runtime(make_settings(tmp_path, greeter={"greeting": "alert"}), plugin_manager)
    assert runtime.notify(Event(kind="vm.crashed", message="web1 is gone")) == []
    assert inbox.events == ["alert: web1 is gone"]


# --------------------------------------------------------------------------------------------
# bhype_add_hookspecs


class GadgetSpecs:
    """Hook specs a plugin declares for other plugins (as the web UI declares its own)."""

    @pluggy.HookspecMarker("bhype")
    def bhype_gadget_register(self, register):
        """Register gadgets."""


class GadgetHost:
    @hookimpl
    def bhype_add_hookspecs(self, pm):
        pm.add_hookspecs(GadgetSpecs)


class GadgetMaker:
    @hookimpl
    def bhype_gadget_register(self, register):
        register("sprocket")


def test_a_plugin_declares_hooks_that_plugins_registered_before_it_implement():
    """``bhype_add_hookspecs`` is historic: the implementing plugin may come first (its hook is
    pending until the declaring plugin arrives), and the final check passes."""
    from bhype_core.plugins import make_plugin_manager

    pm = make_plugin_manager(load_entrypoints=False, plugins=[("maker", GadgetMaker()), ("host", GadgetHost())])
    made: list[str] = []
    pm.hook.bhype_gadget_register(register=made.append)
    assert made == ["sprocket"]


def test_implementing_a_hook_nobody_declares_is_still_an_error():
    from bhype_core.plugins import make_plugin_manager

    with pytest.raises(PluginError, match="bhype_gadget_register"):
        make_plugin_manager(load_entrypoints=False, plugins=[("maker", GadgetMaker())])
