"""The VM lifecycle hooks through the one facade (``bhype_core.vm.hooks``) and where the core
fires them: every pair's signature and grammar (a ``before_`` veto names the plugin and stops
the step; an ``after_`` failure is recorded, undoes nothing, and the other observers are still
called once each), wrappers, ``vm.edit``, ``vm.restart``, and ``register_vm``/``unregister_vm``."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from bhype_core.errors import PluginError, ValidationErrors
from bhype_core.hookspecs import hookimpl
from bhype_core.plugin_api import find_vm, register_vm, unregister_vm, vm_after, vm_before
from bhype_core.vm.create import create_vm
from bhype_core.vm.edit import edit_vm
from bhype_core.vm.models import VM
from bhype_core.vm.power import restart_vm
from bhype_core.vm.services import open_datastore

SMALL = {"disks": [{"size": "16M"}], "memory": "256M", "cpus": 1}

# verb -> the extra arguments its hooks take (bhype_core.hookspecs), with sample values.
VERBS: dict[str, dict] = {
    "create": {}, "start": {}, "stop": {}, "restart": {}, "destroy": {},
    "edit": {"spec": "<spec>", "changed": ["memory"]},
    "snapshot": {"snapshot": "before-upgrade"}, "rollback": {"snapshot": "before-upgrade"},
    "clone": {"target": "web2"}, "backup": {"destination": "offsite"}, "restore": {"source": "offsite/3"},
    "move": {"destination": "datastore:fast"}, "register": {}, "unregister": {},
}  # fmt: skip


class Recorder:
    """Implements every lifecycle hook with its declared arguments (pluggy refuses an
    implementation asking for an argument its spec does not have), recording each call."""

    def __init__(self):
        self.calls = []

    def _see(self, hook, vm, **extra):
        self.calls.append((hook, vm.name if hasattr(vm, "name") else vm, extra))

    @hookimpl
    def bhype_vm_before_create(self, vm, context): self._see("bhype_vm_before_create", vm)
    @hookimpl
    def bhype_vm_after_create(self, vm, context): self._see("bhype_vm_after_create", vm)
    @hookimpl
    def bhype_vm_before_start(self, vm, context): self._see("bhype_vm_before_start", vm)
    @hookimpl
    def bhype_vm_after_start(self, vm, context): self._see("bhype_vm_after_start", vm)
    @hookimpl
    def bhype_vm_before_stop(self, vm, context): self._see("bhype_vm_before_stop", vm)
    @hookimpl
    def bhype_vm_after_stop(self, vm, context): self._see("bhype_vm_after_stop", vm)
    @hookimpl
    def bhype_vm_before_restart(self, vm, context): self._see("bhype_vm_before_restart", vm)
    @hookimpl
    def bhype_vm_after_restart(self, vm, context): self._see("bhype_vm_after_restart", vm)
    @hookimpl
    def bhype_vm_before_destroy(self, vm, context): self._see("bhype_vm_before_destroy", vm)
    @hookimpl
    def bhype_vm_after_destroy(self, vm, context): self._see("bhype_vm_after_destroy", vm)
    @hookimpl
    def bhype_vm_before_edit(self, vm, spec, changed, context):
        self._see("bhype_vm_before_edit", vm, changed=changed)
    @hookimpl
    def bhype_vm_after_edit(self, vm, spec, changed, context):
        self._see("bhype_vm_after_edit", vm, changed=changed)
    @hookimpl
    def bhype_vm_before_snapshot(self, vm, snapshot, context):
        self._see("bhype_vm_before_snapshot", vm, snapshot=snapshot)
    @hookimpl
    def bhype_vm_after_snapshot(self, vm, snapshot, context):
        self._see("bhype_vm_after_snapshot", vm, snapshot=snapshot)
    @hookimpl
    def bhype_vm_before_rollback(self, vm, snapshot, context):
        self._see("bhype_vm_before_rollback", vm, snapshot=snapshot)
    @hookimpl
    def bhype_vm_after_rollback(self, vm, snapshot, context):
        self._see("bhype_vm_after_rollback", vm, snapshot=snapshot)
    @hookimpl
    def bhype_vm_before_clone(self, vm, target, context): self._see("bhype_vm_before_clone", vm, target=target)
    @hookimpl
    def bhype_vm_after_clone(self, vm, target, context): self._see("bhype_vm_after_clone", vm, target=target)
    @hookimpl
    def bhype_vm_before_backup(self, vm, destination, context):
        self._see("bhype_vm_before_backup", vm, destination=destination)
    @hookimpl
    def bhype_vm_after_backup(self, vm, destination, context):
        self._see("bhype_vm_after_backup", vm, destination=destination)
    @hookimpl
    def bhype_vm_before_restore(self, vm, source, context): self._see("bhype_vm_before_restore", vm, source=source)
    @hookimpl
    def bhype_vm_after_restore(self, vm, source, context): self._see("bhype_vm_after_restore", vm, source=source)
    @hookimpl
    def bhype_vm_before_move(self, vm, destination, context):
        self._see("bhype_vm_before_move", vm, destination=destination)
    @hookimpl
    def bhype_vm_after_move(self, vm, destination, context):
        self._see("bhype_vm_after_move", vm, destination=destination)
    @hookimpl
    def bhype_vm_before_register(self, vm, context): self._see("bhype_vm_before_register", vm)
    @hookimpl
    def bhype_vm_after_register(self, vm, context): self._see("bhype_vm_after_register", vm)
    @hookimpl
    def bhype_vm_before_unregister(self, vm, context): self._see("bhype_vm_before_unregister", vm)
    @hookimpl
    def bhype_vm_after_unregister(self, vm, context): self._see("bhype_vm_after_unregister", vm)


@hookimpl
def _veto(self, vm, context):
    raise ValidationErrors([("memory", "more than this host offers")])


@hookimpl
def _fail(self, vm, context):
    raise RuntimeError("inventory service unreachable")


def Vetoer(verbs):  # noqa: N802 - builds a plugin like a class would
    """A plugin vetoing every ``before_<verb>`` named with a field error."""
    return type("Vetoer", (), {f"bhype_vm_before_{verb}": _veto for verb in verbs})()


def Broken(hooks):  # noqa: N802
    """A plugin raising a plain exception in every hook named (instances share the function:
    the facade tells them apart by ``self``)."""
    return type("Broken", (), dict.fromkeys(hooks, _fail))()


class FakeVM:
    name = "web1"


@pytest.fixture
def runtime(make_vm_runtime):
    return make_vm_runtime()


@pytest.mark.parametrize("verb", VERBS)
def test_every_pair_reaches_its_implementations_with_its_arguments(make_vm_runtime, task_context, verb):
    recorder = Recorder()
    runtime = make_vm_runtime(("recorder", recorder))
    context = task_context(runtime, "test")
    vm_before(runtime.pm, verb, FakeVM(), context, **VERBS[verb])
    assert vm_after(runtime.pm, verb, FakeVM(), context, **VERBS[verb]) == []
    extra = {k: v for k, v in VERBS[verb].items() if k != "spec"}
    assert recorder.calls == [(f"bhype_vm_before_{verb}", "web1", extra), (f"bhype_vm_after_{verb}", "web1", extra)]


@pytest.mark.parametrize("verb", VERBS)
def test_a_before_veto_names_the_plugin_and_stops_earlier_plugins(make_vm_runtime, task_context, verb):
    recorder = Recorder()
    runtime = make_vm_runtime(("recorder", recorder), ("quota", Vetoer([verb])))
    with pytest.raises(ValidationErrors) as caught:
        vm_before(runtime.pm, verb, FakeVM(), task_context(runtime, "test"), **VERBS[verb])
    expected = [("memory", "plugin quota: more than this host offers")]
    assert [(e.path, e.message) for e in caught.value.errors] == expected
    assert recorder.calls == []  # registered earlier: pluggy calls it later, and the veto stopped it


def test_any_other_error_in_a_before_hook_is_a_plugin_error_naming_the_plugin(make_vm_runtime, task_context):
    runtime = make_vm_runtime(("inventory", Broken(["bhype_vm_before_snapshot"])))
    with pytest.raises(PluginError, match="plugin 'inventory' failed in bhype_vm_before_snapshot: "
                                          "RuntimeError: inventory service unreachable"):
        vm_before(runtime.pm, "snapshot", FakeVM(), task_context(runtime, "test"), snapshot="s1")


@pytest.mark.parametrize("verb", VERBS)
def test_an_after_failure_is_recorded_and_every_other_observer_is_called_once(make_vm_runtime, task_context, verb):
    first, last = Recorder(), Recorder()
    runtime = make_vm_runtime(("first", first), ("broken", Broken([f"bhype_vm_after_{verb}"])), ("last", last))
    context = task_context(runtime, "test")
    failures = vm_after(runtime.pm, verb, FakeVM(), context, **VERBS[verb])
    assert [(f.plugin, f.hook, f.error) for f in failures] == [
        ("broken", f"bhype_vm_after_{verb}", "RuntimeError: inventory service unreachable")]
    assert len(first.calls) == 1 and len(last.calls) == 1  # before and after the broken one in pluggy's order
    assert f"plugin broken failed in bhype_vm_after_{verb} (the step stays done)" in context.reporter.text()


def test_two_failing_observers_are_both_recorded(make_vm_runtime, task_context):
    middle = Recorder()
    runtime = make_vm_runtime(("one", Broken(["bhype_vm_after_stop"])), ("middle", middle),
                              ("two", Broken(["bhype_vm_after_stop"])))
    failures = vm_after(runtime.pm, "stop", FakeVM(), task_context(runtime, "test"))
    assert sorted(f.plugin for f in failures) == ["one", "two"] and len(middle.calls) == 1


class Timing:
    """A new-style wrapper: runs around every other implementation (the old hand-written loop
    skipped wrappers)."""

    def __init__(self):
        self.events = []

    @hookimpl(wrapper=True)
    def bhype_vm_before_start(self, vm, context):
        self.events.append("enter")
        result = yield
        self.events.append("leave")
        return result


def test_wrappers_run_around_the_other_implementations(make_vm_runtime, task_context):
    timing, recorder = Timing(), Recorder()
    runtime = make_vm_runtime(("recorder", recorder), ("timing", timing))
    vm_before(runtime.pm, "start", FakeVM(), task_context(runtime, "test"))
    assert timing.events == ["enter", "leave"] and recorder.calls[0][0] == "bhype_vm_before_start"


def test_a_veto_through_a_wrapper_still_names_the_vetoing_plugin(make_vm_runtime, task_context):
    timing = Timing()
    runtime = make_vm_runtime(("quota", Vetoer(["start"])), ("timing", timing))
    with pytest.raises(ValidationErrors, match="plugin quota"):
        vm_before(runtime.pm, "start", FakeVM(), task_context(runtime, "test"))
    assert timing.events == ["enter"]


# --------------------------------------------------------------------------------------------
# Where the core fires them


def test_edit_fires_before_and_after_edit_with_the_new_spec(make_vm_runtime, task_context):
    recorder = Recorder()
    runtime = make_vm_runtime(("recorder", recorder))
    create_vm(task_context(runtime, "vm.create"), "web1", template="alpine", overrides=SMALL)
    recorder.calls.clear()
    edit_vm(task_context(runtime, "vm.edit"), "web1", {"description": "db"})
    assert recorder.calls == [("bhype_vm_before_edit", "web1", {"changed": ["description"]}),
                              ("bhype_vm_after_edit", "web1", {"changed": ["description"]})]


def test_an_edit_veto_leaves_the_spec_and_disks_unchanged(make_vm_runtime, task_context):
    runtime = make_vm_runtime(("quota", Vetoer(["edit"])))
    create_vm(task_context(runtime, "vm.create"), "web1", template="alpine", overrides=SMALL)
    with pytest.raises(ValidationErrors, match="plugin quota"):
        edit_vm(task_context(runtime, "vm.edit"), "web1", {"disks": [{"size": "16M"}, {"size": "8M"}]})
    assert len(find_vm(runtime, "web1").spec["disks"]) == 1
    assert not (open_datastore(runtime).vm_dir("web1") / "disk1.img").exists()


def test_a_restart_veto_stops_before_the_vm_is_touched(make_vm_runtime, task_context):
    recorder = Recorder()
    runtime = make_vm_runtime(("recorder", recorder), ("quota", Vetoer(["restart"])))
    create_vm(task_context(runtime, "vm.create"), "web1", template="alpine", overrides=SMALL)
    recorder.calls.clear()
    with pytest.raises(ValidationErrors, match="plugin quota"):
        restart_vm(task_context(runtime, "vm.restart"), "web1")
    assert recorder.calls == []  # no stop, no start was attempted


def test_register_vm_fires_the_register_pair_and_unregister_keeps_the_files(make_vm_runtime, task_context):
    recorder = Recorder()
    runtime = make_vm_runtime(("recorder", recorder))
    store = open_datastore(runtime)
    store.create_vm_dir("found1")
    store.create_volume("found1", "disk0", 16 << 20)
    ref = register_vm(task_context(runtime, "test.import"), "default",
                      {"name": "found1", "disks": [{"size": "16M", "volume": "disk0"}]}, "bob")
    assert ref.id is not None and ref.owner == "bob" and ref.datastore == "default"
    assert [call[0] for call in recorder.calls] == ["bhype_vm_before_register", "bhype_vm_after_register"]
    assert find_vm(runtime, "found1").uuid == ref.uuid

    recorder.calls.clear()
    unregister_vm(task_context(runtime, "test.export"), "found1")
    assert [call[0] for call in recorder.calls] == ["bhype_vm_before_unregister", "bhype_vm_after_unregister"]
    assert find_vm(runtime, "found1") is None
    assert (store.vm_dir("found1") / "disk0.img").exists()


def test_a_register_veto_leaves_no_row(make_vm_runtime, task_context):
    runtime = make_vm_runtime(("quota", Vetoer(["register"])))
    with pytest.raises(ValidationErrors, match="plugin quota"):
        register_vm(task_context(runtime, "test.import"), "default", {"name": "found2"}, "bob")
    with Session(runtime.engine) as db:
        assert list(db.exec(select(VM))) == []
