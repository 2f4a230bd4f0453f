"""``plugin_api.list_vm_summaries``: every VM without its spec, for system work that looks at
every VM often (the monitoring sampler each tick, issue 15)."""

from __future__ import annotations

from bhype_core.plugin_api import find_vm, list_vm_summaries, list_vms
from bhype_core.vm.create import create_vm

SUMMARY_FIELDS = ("id", "name", "uuid", "owner", "datastore", "state", "state_detail", "updated", "host")


def test_summaries_list_every_vm_with_its_state_and_no_spec(vm_runtime, task_context):
    create_vm(task_context(vm_runtime, "vm.create", user="alice"), "b2", overrides={"boot": "grub"})
    create_vm(task_context(vm_runtime, "vm.create", user="bob"), "a2", overrides={"boot": "grub"})
    summaries = list_vm_summaries(vm_runtime)
    assert [row.name for row in summaries] == ["a2", "b2"]  # by name, every owner's
    assert all(tuple(row._fields) == SUMMARY_FIELDS for row in summaries)  # no spec read
    full = {row.name: row for row in list_vms(vm_runtime)}
    for row in summaries:
        vm = find_vm(vm_runtime, row.name)
        assert (row.uuid, row.owner, row.state, row.updated) == (vm.uuid, vm.owner, vm.state, vm.updated)
        assert row.uuid == full[row.name].uuid


def test_summaries_by_state_plus_followed_uuids(vm_runtime, task_context):
    """With ``states``, SQL keeps only VMs in those states, plus the UUIDs asked for whatever
    their state (a sampler reads its running VMs and the ones it still follows, not all)."""
    from sqlalchemy import update

    from bhype_core.vm.models import VM

    for name in ("c1", "c2", "c3"):
        create_vm(task_context(vm_runtime, "vm.create", user="alice"), name, overrides={"boot": "grub"})
    with vm_runtime.engine.begin() as connection:
        connection.execute(update(VM).where(VM.name == "c2").values(state="running"))
    active = ("starting", "running", "stopping")
    assert [row.name for row in list_vm_summaries(vm_runtime, states=active)] == ["c2"]
    c3 = find_vm(vm_runtime, "c3")
    assert [row.name for row in list_vm_summaries(vm_runtime, states=active, uuids=[c3.uuid])] == ["c2", "c3"]
    assert list_vm_summaries(vm_runtime, states=()) == []
    assert len(list_vm_summaries(vm_runtime)) == 3
