"""Recovery of VM tasks the worker could not finish (issue 11), in-process: an interrupted
``vm.destroy`` is finished from its intent (written before the first removal), the undo actions
of ``vm.create`` never touch a VM whose record exists, and the orphan sweep removes VM
directories no record or intent owns (old enough), and reports them; interface names by
bHype's scheme are judged against the VM and switch records."""

from __future__ import annotations

import os
import time

from sqlalchemy import update
from sqlmodel import Session, col, select

from bhype_core.auth.principal import Principal
from bhype_core.db.intent_models import TaskIntent
from bhype_core.db.task_models import Task
from bhype_core.network.models import bridge_name, linux_tap_name, vlan_bridge_name
from bhype_core.tasks import MemoryReporter, TaskContext, intents, service, store
from bhype_core.vm.create import create_vm
from bhype_core.vm.destroy import destroy_vm
from bhype_core.vm.intents import FINISH_DESTROY, remove_dir, remove_volume
from bhype_core.vm.models import VM
from bhype_core.vm.orphans import orphan_interfaces, sweep, sweep_job
from bhype_core.vm.services import open_datastore

SMALL = {"memory": "256M", "disks": [{"size": "4M"}, {"size": "4M"}]}


def names(runtime) -> list[str]:
    with Session(runtime.engine) as db:
        return [vm.name for vm in db.exec(select(VM))]


def interrupted_task(runtime, kind: str, arguments: dict) -> Task:
    """A Task row left ``interrupted`` (its worker died), as recovery marks it."""
    task = service.submit(runtime, Principal("alice", "operator"), kind, arguments)
    with runtime.engine.begin() as connection:
        connection.execute(update(Task).where(col(Task.id) == task.id).values(state="interrupted"))
    return store.get_task(runtime.engine, task.id)


def test_an_interrupted_destroy_is_finished_by_recovery(vm_runtime, task_context):
    create_vm(task_context(vm_runtime, "vm.create"), "doomed", template="debian", overrides=SMALL)
    vm_dir = open_datastore(vm_runtime).vm_dir("doomed")
    task = interrupted_task(vm_runtime, "vm.destroy", {"name": "doomed"})
    context = TaskContext(vm_runtime, task.id, task.kind, "alice", MemoryReporter())
    # The crash: the destroy recorded its intent and removed the first disk, then the worker died.
    real = open_datastore(vm_runtime)
    deletions = []

    def dying_delete(name, volume):
        deletions.append(volume)
        if len(deletions) == 2:
            raise SystemExit("kill -9")  # stands for the worker's death between two removals
        return type(real).delete_volume(real, name, volume)

    real.delete_volume = dying_delete
    try:
        destroy_vm(context, "doomed")
    except SystemExit:
        pass
    finally:
        del real.delete_volume
    assert names(vm_runtime) == ["doomed"] and sorted(os.listdir(vm_dir)) == ["OVMF_VARS.fd", "disk1.img"]
    with Session(vm_runtime.engine) as db:
        assert [row.action for row in db.exec(select(TaskIntent).where(TaskIntent.task_id == task.id))] == [
            FINISH_DESTROY]

    (replay,) = intents.settle(vm_runtime, host="any")
    assert names(vm_runtime) == [] and not vm_dir.exists()
    assert replay.undone == [f"finished destroying VM doomed: removed {vm_dir / 'disk1.img'}, {vm_dir} and its row"]


def test_create_undo_leaves_a_vm_with_a_record_alone(vm_runtime, task_context):
    create_vm(task_context(vm_runtime, "vm.create"), "owned", template="debian", overrides=SMALL)
    context = task_context(vm_runtime, "vm.create")
    assert remove_volume(context, "default", "owned", "disk0") is None
    assert remove_dir(context, "default", "owned") is None
    assert open_datastore(vm_runtime).volume("owned", "disk0").path.exists()
    assert "a VM record named owned owns it" in context.reporter.text()


def test_the_sweep_removes_old_unowned_vm_directories_only(vm_runtime, task_context):
    create_vm(task_context(vm_runtime, "vm.create"), "kept", template="debian", overrides=SMALL)
    datastore = open_datastore(vm_runtime)
    old = time.time() - 3600
    for name in ("orphan", "young", "claimed"):
        datastore.create_vm_dir(name)
        datastore.create_volume(name, "disk0", 1 << 20)
        if name != "young":
            os.utime(datastore.vm_dir(name), (old, old))
    # Queued: it claims the name.
    task = service.submit(vm_runtime, Principal("alice", "operator"), "vm.create", {"name": "claimed"})
    assert store.get_task(vm_runtime.engine, task.id).state == "queued"

    events = []
    vm_runtime.notify = events.append
    context = task_context(vm_runtime, "vm.sweep-orphans", user=None)
    result = sweep_job(context)
    assert result == {"removed": [f"VM directory {datastore.vm_dir('orphan')}"], "failed": []}
    assert sorted(os.listdir(datastore.vm_dir("x").parent)) == ["claimed", "kept", "young"]
    assert f"removed orphaned VM directory {datastore.vm_dir('orphan')}" in context.reporter.text()
    assert [event.kind for event in events] == ["host.orphans_removed"]
    assert sweep(vm_runtime, context.log, now=time.time() + 7200).removed == [
        f"VM directory {datastore.vm_dir('young')}"]  # once old enough


def test_interfaces_are_judged_by_bhypes_names_against_the_records():
    uuid = "6dc135e1-b8c3-4888-a8c9-386e64dca5b0"
    have = {
        "eth0", "lo", "br0", "tap0",  # not bHype's names: never touched
        linux_tap_name(uuid, 0), linux_tap_name("another-uuid", 1),
        bridge_name("lab"), bridge_name("gone"), vlan_bridge_name("lab", 10), vlan_bridge_name("gone", 10),
        bridge_name("creating"),  # a switch.create in flight (its intent names it)
    }
    assert orphan_interfaces(have, [uuid], ["lab"], {"creating"}) == sorted(
        [linux_tap_name("another-uuid", 1), bridge_name("gone"), vlan_bridge_name("gone", 10)])
