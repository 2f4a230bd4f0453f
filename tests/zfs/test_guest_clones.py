"""Clones on real OpenZFS: linked (zfs-clone(8)), full (zfs-send(8) | zfs-receive(8)) and promoted
(zfs-promote(8)) copies of a VM with a new identity, and the refusal to destroy an origin."""

from __future__ import annotations

import re

import pytest
from sqlmodel import Session

from bhype_core.errors import Conflict, PluginError, ValidationErrors
from bhype_core.hookspecs import hookimpl
from bhype_core.units import human_size
from bhype_core.vm.create import create_vm
from bhype_core.vm.destroy import destroy_vm
from bhype_core.vm.records import find_vm
from bhype_core.vm.services import open_datastore
from bhype_zfs import replicate
from bhype_zfs.tasks import clone, rollback, snapshot
from bhype_zfs.tool import zfs_host

from .helpers import task_context

pytestmark = [pytest.mark.guest, pytest.mark.slow]


def make(runtime, name: str) -> dict:
    overrides = {"boot": {"mode": "bhyveload"}, "disks": [{"size": "16M"}, {"size": "8M"}], "nics": [{}],
                 "graphics": {"vnc": True}, "cloud_init": {"meta_data": {"instance-id": f"i-{name}",
                                                                        "local-hostname": name}}}
    return create_vm(task_context(runtime, "vm.create"), name, overrides=overrides)


def get(host, prop: str, dataset: str) -> str:
    return host.shared_runner.run(["zfs", "get", "-Hp", "-o", "value", prop, dataset]).stdout.strip()


def digest(host, device: str) -> str:
    # A test probe (not bHype code): hash the first MiB of a disk.
    return host.shared_runner.run(["sh", "-c", 'head -c 1048576 "$0" | sha256sum', device]).stdout


def row(runtime, name: str):
    with Session(runtime.engine) as db:
        return find_vm(db, name)


def test_linked_clone_gets_a_new_identity_and_protects_its_origin(tank, guest_runtime):
    runtime = guest_runtime()
    source = make(runtime, "src1")
    dev = "/dev/zvol/tank/bhype/vms/src1/disk0"
    tank.shared_runner.run(["dd", "if=/dev/urandom", f"of={dev}", "bs=64k", "count=16", "conv=fsync"])

    result = clone(task_context(runtime, "zfs.clone"), "src1", "lnk1")
    assert result["mode"] == "linked" and result["registered"] is True
    assert result["datasets"] == ["tank/bhype/vms/lnk1", "tank/bhype/vms/lnk1/disk0", "tank/bhype/vms/lnk1/disk1"]
    origin = get(tank, "origin", "tank/bhype/vms/lnk1/disk0")
    assert origin == f"tank/bhype/vms/src1/disk0@{result['snapshot']}"
    assert get(tank, "volmode", "tank/bhype/vms/lnk1/disk0") == "dev"
    assert digest(tank, dev) == digest(tank, "/dev/zvol/tank/bhype/vms/lnk1/disk0")

    old, new = row(runtime, "src1"), row(runtime, "lnk1")
    assert new.uuid != old.uuid == source["uuid"]
    assert new.spec["nics"][0]["mac"] != old.spec["nics"][0]["mac"]
    # Never the source's VNC password: this test's QEMU driver uses none at all (its VNC is a
    # private socket); on bhyve, validation generates a new one (tests/core/test_spec.py).
    assert old.spec["graphics"]["password"] is None and new.spec["graphics"]["password"] is None
    assert new.spec["cloud_init"]["meta_data"] == {"local-hostname": "lnk1"}
    assert new.spec["disks"] == old.spec["disks"]
    assert get(tank, "org.bhype:uuid", "tank/bhype/vms/lnk1") == new.uuid
    assert get(tank, "org.bhype:name", "tank/bhype/vms/lnk1") == "lnk1"

    # The origin cannot go while the clone depends on it: refused before any disk is touched.
    with pytest.raises(PluginError, match="is the origin of clone"):
        destroy_vm(task_context(runtime, "vm.destroy"), "src1")
    store = open_datastore(runtime, "zfs")
    with pytest.raises(Conflict, match=r"destroy those clones first, or run `zfs promote`"):
        store.remove_vm_dir("src1")
    assert store.volume("src1", "disk0").size == 16 * 2**20
    assert row(runtime, "src1") is not None

    with pytest.raises(ValidationErrors, match="already exists"):
        clone(task_context(runtime, "zfs.clone"), "src1", "lnk1")
    store.remove_vm_dir("lnk1")
    store.remove_vm_dir("src1")  # no dependents left
    assert tank.shared_runner.run(["zfs", "list", "tank/bhype/vms/src1"], check=False).returncode == 1


def test_full_clone_is_independent_and_leaves_no_snapshot(tank, guest_runtime):
    runtime = guest_runtime()
    make(runtime, "src2")
    dev = "/dev/zvol/tank/bhype/vms/src2/disk1"
    tank.shared_runner.run(["dd", "if=/dev/urandom", f"of={dev}", "bs=64k", "count=8", "conv=fsync"])
    result = clone(task_context(runtime, "zfs.clone"), "src2", "full2", mode="full")
    assert get(tank, "origin", "tank/bhype/vms/full2/disk1") == "-"
    assert get(tank, "volmode", "tank/bhype/vms/full2/disk1") == "dev"
    assert digest(tank, dev) == digest(tank, "/dev/zvol/tank/bhype/vms/full2/disk1")
    listed = tank.shared_runner.run(["zfs", "list", "-H", "-t", "snapshot", "-o", "name", "-r",
                                     "tank/bhype/vms/src2", "tank/bhype/vms/full2"]).stdout
    assert listed == "", f"temporary snapshot {result['snapshot']} left behind"
    open_datastore(runtime, "zfs").remove_vm_dir("src2")
    assert open_datastore(runtime, "zfs").volume("full2", "disk1").size == 8 * 2**20


def test_promoted_clone_from_an_existing_snapshot(tank, guest_runtime):
    runtime = guest_runtime()
    make(runtime, "src3")
    snapshot(task_context(runtime), "golden", vm="src3")
    result = clone(task_context(runtime, "zfs.clone"), "src3", "prom3", snapshot="golden", mode="promote")
    assert result["snapshot"] == "golden"
    # zfs-promote(8): the clone now owns the snapshot; the source depends on it.
    assert get(tank, "origin", "tank/bhype/vms/prom3/disk0") == "-"
    assert get(tank, "origin", "tank/bhype/vms/src3/disk0") == "tank/bhype/vms/prom3/disk0@golden"
    with pytest.raises(Conflict, match="origin of clone"):
        open_datastore(runtime, "zfs").remove_vm_dir("prom3")


def test_clone_of_a_disk_added_after_the_snapshot_is_refused(tank, guest_runtime):
    runtime = guest_runtime()
    make(runtime, "src4")
    snapshot(task_context(runtime), "old", vm="src4")
    open_datastore(runtime, "zfs").create_volume("src4", "disk9", 2**20)
    with pytest.raises(Conflict, match="did not exist at @old"):
        clone(task_context(runtime, "zfs.clone"), "src4", "c4", snapshot="old")
    assert tank.shared_runner.run(["zfs", "list", "tank/bhype/vms/c4"], check=False).returncode == 1


def test_send_receive_replicates_a_tree_with_user_properties(tank, guest_runtime):
    runtime = guest_runtime()
    make(runtime, "src5")
    host = zfs_host(runtime)
    snapshot(task_context(runtime), "r1", vm="src5")
    reported: list[tuple[int, str]] = []
    size = replicate.send_receive(host, "tank/bhype/vms/src5@r1", "tank/bhype/templates/src5", replicate=True,
                                  progress=lambda percent, message: reported.append((percent, message)))
    assert size > 0
    assert reported[0][0] == 0 and reported[0][1].startswith("sending tank/bhype/vms/src5@r1")
    assert reported[-1] == (100, "received tank/bhype/templates/src5")
    assert [p for p, _ in reported] == sorted(p for p, _ in reported)
    assert get(tank, "org.bhype:name", "tank/bhype/templates/src5") == "src5"
    assert get(tank, "type", "tank/bhype/templates/src5/disk0") == "volume"
    assert "tank/bhype/templates/src5/disk0@r1" in tank.shared_runner.run(
        ["zfs", "list", "-H", "-t", "snapshot", "-o", "name", "-r", "tank/bhype/templates/src5"]).stdout.split()
    with pytest.raises(Conflict, match="already exists"):
        replicate.send_receive(host, "tank/bhype/vms/src5@r1", "tank/bhype/templates/src5")

    # A copy that cannot fit is refused before anything is sent (here: a 1 MiB quota).
    tank.shared_runner.run(["zfs", "create", "-o", "quota=1M", "tank/bhype/templates/small"])
    tank.shared_runner.run(["dd", "if=/dev/urandom", "of=/dev/zvol/tank/bhype/vms/src5/disk0", "bs=1M", "count=4",
                            "conv=fsync"])
    snapshot(task_context(runtime), "r2", vm="src5")
    with pytest.raises(Conflict, match=r"only .* is free at tank/bhype/templates/small"):
        replicate.send_receive(host, "tank/bhype/vms/src5@r2", "tank/bhype/templates/small/other", replicate=True)
    assert not host.exists("tank/bhype/templates/small/other")


def test_full_copy_of_a_thick_volume_keeps_its_reservation(tank, guest_runtime):
    # A stream sent without -p carries no properties: the copy of a thick zvol would come out
    # sparse, losing the space guarantee its VM had.
    host = zfs_host(guest_runtime())
    run = tank.shared_runner.run
    run(["zfs", "create", "-p", "tank/bhype/templates/thick"])
    run(["zfs", "create", "-V", "8M", "tank/bhype/templates/thick/disk0"])  # no -s: thick
    run(["zfs", "create", "-s", "-V", "8M", "tank/bhype/templates/thick/disk1"])
    run(["zfs", "snapshot", "-r", "tank/bhype/templates/thick@t1"])
    reserved = int(get(tank, "refreservation", "tank/bhype/templates/thick/disk0"))
    assert reserved >= 8 * 2**20
    run(["zfs", "create", "tank/bhype/templates/copies"])
    replicate.copy_dataset(host, "tank/bhype/templates/thick/disk0@t1", "tank/bhype/templates/copies/disk0")
    replicate.copy_dataset(host, "tank/bhype/templates/thick/disk1@t1", "tank/bhype/templates/copies/disk1")
    assert int(get(tank, "refreservation", "tank/bhype/templates/copies/disk0")) == reserved
    assert int(get(tank, "refreservation", "tank/bhype/templates/copies/disk1")) == 0  # sparse stays sparse
    assert get(tank, "volmode", "tank/bhype/templates/copies/disk0") == "dev"

    # The reservation, not the few bytes in the stream, decides whether the copy fits.
    run(["zfs", "create", "-o", "quota=4M", "tank/bhype/templates/tight"])
    refused = rf"needs about {re.escape(human_size(reserved))}, but only .* is free at tank/bhype/templates/tight"
    with pytest.raises(Conflict, match=refused):
        replicate.copy_dataset(host, "tank/bhype/templates/thick/disk0@t1", "tank/bhype/templates/tight/disk0")
    assert not host.exists("tank/bhype/templates/tight/disk0")
    replicate.copy_dataset(host, "tank/bhype/templates/thick/disk1@t1", "tank/bhype/templates/tight/disk1")
    run(["zfs", "destroy", "-r", "tank/bhype/templates/thick"])


class LifecycleLog:
    """Records the lifecycle hooks the zfs tasks fire; vetoes the verbs in ``veto``."""

    def __init__(self, veto=()):
        self.calls, self.veto = [], set(veto)

    def _see(self, hook, vm, **extra):
        self.calls.append((hook, vm.name, extra))
        if hook.startswith("bhype_vm_before_") and hook.removeprefix("bhype_vm_before_") in self.veto:
            raise ValidationErrors([("vm", f"{vm.name} is being backed up")])

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
    def bhype_vm_before_clone(self, vm, target, context):
        self._see("bhype_vm_before_clone", vm, target=target)

    @hookimpl
    def bhype_vm_after_clone(self, vm, target, context):
        self._see("bhype_vm_after_clone", vm, target=target)

    @hookimpl
    def bhype_vm_before_register(self, vm, context):
        self._see("bhype_vm_before_register", vm)

    @hookimpl
    def bhype_vm_after_register(self, vm, context):
        self._see("bhype_vm_after_register", vm)


def test_snapshot_rollback_and_clone_fire_the_lifecycle_hooks(tank, guest_runtime, register_plugin):
    """Through the public API: another plugin sees the snapshot, the rollback, the clone and the
    clone's record appear (``register``: records.py used to insert the row behind its back)."""
    log = register_plugin(LifecycleLog(), "observer")
    runtime = guest_runtime()
    make(runtime, "hk1")
    log.calls.clear()
    snapshot(task_context(runtime, "zfs.snapshot"), "s1", vm="hk1")
    rollback(task_context(runtime, "zfs.rollback"), "s1", vm="hk1")
    clone(task_context(runtime, "zfs.clone"), "hk1", "hk2", snapshot="s1")
    assert log.calls == [
        ("bhype_vm_before_snapshot", "hk1", {"snapshot": "s1"}),
        ("bhype_vm_after_snapshot", "hk1", {"snapshot": "s1"}),
        ("bhype_vm_before_rollback", "hk1", {"snapshot": "s1"}),
        ("bhype_vm_after_rollback", "hk1", {"snapshot": "s1"}),
        ("bhype_vm_before_clone", "hk1", {"target": "hk2"}),
        ("bhype_vm_before_register", "hk2", {}), ("bhype_vm_after_register", "hk2", {}),
        ("bhype_vm_after_clone", "hk1", {"target": "hk2"}),
    ]
    store = open_datastore(runtime, "zfs")
    store.remove_vm_dir("hk2")


def test_a_snapshot_veto_stops_before_any_zfs_command(tank, guest_runtime, register_plugin):
    register_plugin(LifecycleLog(veto={"snapshot", "clone"}), "backup")
    runtime = guest_runtime()
    make(runtime, "hk3")
    with pytest.raises(ValidationErrors, match="plugin backup: hk3 is being backed up"):
        snapshot(task_context(runtime, "zfs.snapshot"), "s1", vm="hk3")
    listed = tank.shared_runner.run(["zfs", "list", "-H", "-t", "snapshot", "-r", "tank/bhype/vms/hk3"]).stdout
    assert "@s1" not in listed
    with pytest.raises(ValidationErrors, match="plugin backup"):
        clone(task_context(runtime, "zfs.clone"), "hk3", "hk4")
    assert row(runtime, "hk4") is None
    assert tank.shared_runner.run(["zfs", "list", "tank/bhype/vms/hk4"], check=False).returncode == 1
