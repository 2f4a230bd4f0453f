"""vm.reconcile (state cache from reality) and the crash listener that turns a driver's crash
report into a ``vm.crashed`` event for the VM's owner."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from bhype_core.drivers.base import VMState, VMStatus
from bhype_core.hookspecs import hookimpl
from bhype_core.spec import instance_name
from bhype_core.vm.create import create_vm
from bhype_core.vm.models import VM
from bhype_core.vm.reconcile import QUIET_SLICES, reconcile
from bhype_core.vm.services import active_driver


class Inbox:
    def __init__(self) -> None:
        self.events = []

    @hookimpl
    def bhype_notify(self, event):
        self.events.append(event)


def set_cached(runtime, name: str, state: str) -> None:
    with Session(runtime.engine) as db:
        row = db.exec(select(VM).where(VM.name == name)).one()
        row.state = state
        db.add(row)
        db.commit()


def states(runtime) -> dict[str, str]:
    with Session(runtime.engine) as db:
        return {row.name: row.state for row in db.exec(select(VM))}


@pytest.fixture
def two_vms(vm_runtime, task_context):
    create_vm(task_context(vm_runtime, "vm.create", user="alice"), "a1", overrides={"boot": "grub"})
    create_vm(task_context(vm_runtime, "vm.create", user="bob"), "b1", overrides={"boot": "grub"})
    return vm_runtime


def test_reconcile_corrects_a_stale_cache_from_the_driver(two_vms, task_context):
    runtime = two_vms
    set_cached(runtime, "a1", "running")  # e.g. the guest powered off while no worker ran
    set_cached(runtime, "b1", "running")
    result = reconcile(task_context(runtime, "vm.reconcile", user=None))  # the periodic job
    assert result == {"checked": 2, "changed": {"a1": "running -> stopped", "b1": "running -> stopped"},
                      "unknown": []}
    assert states(runtime) == {"a1": "stopped", "b1": "stopped"}


@pytest.fixture
def role_vms(make_vm_runtime, task_context, bhype_roles):
    """Two VMs owned by two real operators (kit users in a kit group, never host accounts)."""
    runtime = make_vm_runtime(auth=bhype_roles.auth_section())
    first, second = bhype_roles.operator(), bhype_roles.operator()
    create_vm(task_context(runtime, "vm.create", user=first.name), "a1", overrides={"boot": "grub"})
    create_vm(task_context(runtime, "vm.create", user=second.name), "b1", overrides={"boot": "grub"})
    set_cached(runtime, "a1", "running")
    set_cached(runtime, "b1", "running")
    return runtime, first, bhype_roles


def test_an_operator_reconciles_only_their_own_vms(role_vms, task_context):
    runtime, operator, _ = role_vms
    result = reconcile(task_context(runtime, "vm.reconcile", user=operator.name))
    assert result["checked"] == 1 and result["changed"] == {"a1": "running -> stopped"}
    assert states(runtime) == {"a1": "stopped", "b1": "running"}


def test_an_admin_by_group_reconciles_every_vm(role_vms, task_context):
    runtime, _, roles = role_vms
    result = reconcile(task_context(runtime, "vm.reconcile", user=roles.admin().name))
    assert result["checked"] == 2 and set(result["changed"]) == {"a1", "b1"}


def test_a_crash_the_driver_reports_becomes_an_event_for_the_owner(make_vm_runtime, task_context):
    inbox = Inbox()
    runtime = make_vm_runtime(("inbox", inbox))
    create_vm(task_context(runtime, "vm.create"), "web1", overrides={"boot": "grub"})
    driver = active_driver(runtime)
    status = VMStatus(VMState.CRASHED, exit_status=3, detail="guest triple fault", crash_id="c-1")
    for listener in driver._crash_listeners:  # what the driver calls once per crash
        listener(instance_name("web1"), status)
    [event] = inbox.events
    assert (event.kind, event.severity, event.subject, event.user) == ("vm.crashed", "error", "vm:web1", "alice")
    assert "guest triple fault" in event.message and event.data["exit_status"] == 3


def test_the_minutely_pass_skips_stopped_vms_until_their_state_file_or_row_changes(two_vms, task_context,
                                                                                    monkeypatch):
    """Issue 15: 10,000 stopped VMs must not cost 10,000 spec validations and state reads a minute."""
    from bhype_core.drivers.state import VMFiles, write_json
    from bhype_core.vm.services import open_datastore
    from bhype_core.vm.watch import StateFileWatch

    runtime = two_vms
    driver = active_driver(runtime)
    asked: list[str] = []
    real_status = driver.status
    monkeypatch.setattr(driver, "status", lambda spec, vm_dir: (asked.append(spec.name), real_status(spec, vm_dir))[1])
    periodic = task_context(runtime, "vm.reconcile", user=None)
    assert reconcile(periodic)["checked"] == 2 and sorted(asked) == ["a1", "b1"]
    asked.clear()
    assert reconcile(periodic)["checked"] == 2 and asked == []  # nothing changed: nothing asked
    write_json(VMFiles(open_datastore(runtime, "default").vm_dir("a1")).state, {"state": "stopped"})
    set_cached(runtime, "b1", "running")  # e.g. a start task
    assert reconcile(periodic)["changed"]["b1"] == "running -> stopped"
    assert "b1" in asked  # a row that changed is asked about on the very next pass
    # A state file rewritten behind bHype's back is seen on its VM's slice's pass, and only then.
    passes = 1
    while "a1" not in asked:
        passes += 1
        assert passes <= QUIET_SLICES, "a changed state file must be seen within QUIET_SLICES passes"
        reconcile(periodic)
    assert asked.count("a1") == 1
    assert set(StateFileWatch(runtime).signatures()) == set()  # both stopped: no stat at all
    set_cached(runtime, "a1", "running")
    assert set(StateFileWatch(runtime).signatures()) == {"a1"}
