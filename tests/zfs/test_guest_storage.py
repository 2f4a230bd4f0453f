"""The zfs storage backend on real OpenZFS (the ZFS test guest over SSH): VM datasets, zvol and
file disks, grow, delete, and VMs re-registered from user properties after export/import.

Commands: zfs-create(8) (``-s -V``, ``volmode=dev``), zfs-set(8) ``volsize``, zfs-destroy(8),
zfs-get(8), zpool-export(8)/zpool-import(8).
"""

from __future__ import annotations

import json

import pytest
from sqlmodel import Session

from bhype_core.errors import Conflict, NotFound, ValidationErrors
from bhype_core.vm.create import create_vm
from bhype_core.vm.records import find_vm
from bhype_core.vm.services import open_datastore
from bhype_zfs import import_vms
from bhype_zfs.storage import ZfsStorage, zfs_backend
from bhype_zfs.tasks import import_vms_task

from .helpers import task_context

pytestmark = [pytest.mark.guest, pytest.mark.slow]
MIB = 2**20


def zfs_get(host, prop: str, dataset: str) -> str:
    return host.shared_runner.run(["zfs", "get", "-Hp", "-o", "value", prop, dataset]).stdout.strip()


def test_zvol_disks_create_grow_delete(tank, guest_runtime):
    store = open_datastore(guest_runtime(), "zfs")
    assert isinstance(store, ZfsStorage)
    assert store.create_vm_dir("vol1") == store.mountpoint("tank/bhype/vms") / "vol1"
    volume = store.create_volume("vol1", "disk0", 64 * MIB)
    assert str(volume.path) == "/dev/zvol/tank/bhype/vms/vol1/disk0"
    run = tank.shared_runner.run
    assert run(["test", "-b", str(volume.path)], check=False).returncode == 0  # udev made the link: usable now
    assert zfs_get(tank, "volmode", "tank/bhype/vms/vol1/disk0") == "dev"
    assert zfs_get(tank, "refreservation", "tank/bhype/vms/vol1/disk0") == "0"  # sparse
    assert zfs_get(tank, "org.bhype:name", "tank/bhype/vms/vol1") == "vol1"

    with pytest.raises(Conflict, match="already exists"):
        store.create_volume("vol1", "disk0", 64 * MIB)
    assert store.grow_volume("vol1", "disk0", 128 * MIB).size == 128 * MIB
    assert store.volume("vol1", "disk0").size == 128 * MIB
    assert int(run(["blockdev", "--getsize64", str(volume.path)]).stdout) == 128 * MIB
    with pytest.raises(ValidationErrors, match="shrinking"):
        store.grow_volume("vol1", "disk0", 64 * MIB)

    store.delete_volume("vol1", "disk0")
    with pytest.raises(NotFound):
        store.volume("vol1", "disk0")
    with pytest.raises(NotFound):
        store.delete_volume("vol1", "disk0")
    store.remove_vm_dir("vol1")
    store.remove_vm_dir("vol1")  # absent: nothing to do
    assert run(["zfs", "list", "tank/bhype/vms/vol1"], check=False).returncode == 1


def test_thick_zvols_reserve_space_and_block_size_is_applied(tank, guest_runtime):
    runtime = guest_runtime(vm={"datastores": {"zfs": {"backend": "zfs", "dataset": "tank/bhype", "sparse": False,
                                                       "volblocksize": "64K"}}})
    store = open_datastore(runtime, "zfs")
    store.create_vm_dir("thick1")
    store.create_volume("thick1", "disk0", 32 * MIB)
    assert int(zfs_get(tank, "refreservation", "tank/bhype/vms/thick1/disk0")) >= 32 * MIB
    assert zfs_get(tank, "volblocksize", "tank/bhype/vms/thick1/disk0") == str(64 * 1024)
    store.grow_volume("thick1", "disk0", 64 * MIB)
    assert int(zfs_get(tank, "refreservation", "tank/bhype/vms/thick1/disk0")) >= 64 * MIB


def test_file_disks_in_the_vm_dataset(tank, guest_runtime):
    runtime = guest_runtime(vm={"datastores": {"zfs": {"backend": "zfs", "dataset": "tank/bhype",
                                                       "disk_type": "file"}}})
    store = open_datastore(runtime, "zfs")
    store.create_vm_dir("file1")
    volume = store.create_volume("file1", "disk0", 16 * MIB)
    assert str(volume.path) == "/tank/bhype/vms/file1/disk0.img"
    run = tank.shared_runner.run
    assert run(["stat", "-c", "%s", str(volume.path)]).stdout.strip() == str(16 * MIB)
    assert int(run(["du", "-k", str(volume.path)]).stdout.split()[0]) < 1024  # sparse
    assert store.grow_volume("file1", "disk0", 32 * MIB).size == 32 * MIB
    copy = store.copy_volume("file1", "disk0", "file1", "disk1")
    assert copy.size == 32 * MIB
    store.delete_volume("file1", "disk0")
    with pytest.raises(NotFound):
        store.volume("file1", "disk0")


def test_copy_volume_is_independent(tank, guest_runtime):
    store = open_datastore(guest_runtime(), "zfs")
    store.create_vm_dir("cp1")
    source = store.create_volume("cp1", "disk0", 8 * MIB)
    run = tank.shared_runner.run
    run(["dd", "if=/dev/urandom", f"of={source.path}", "bs=1M", "count=2", "conv=fsync"])
    copy = store.copy_volume("cp1", "disk0", "cp1", "disk1")
    digest = ["sh", "-c", 'head -c 2097152 "$0" | sha256sum']  # a test probe, not bHype code
    assert run([*digest, str(copy.path)]).stdout == run([*digest, str(source.path)]).stdout
    assert zfs_get(tank, "origin", "tank/bhype/vms/cp1/disk1") == "-"
    snaps = run(["zfs", "list", "-H", "-t", "snapshot", "-o", "name", "-r", "tank/bhype/vms/cp1"]).stdout
    assert snaps == ""  # the temporary snapshots are gone on both sides
    store.delete_volume("cp1", "disk0")  # the copy does not depend on it
    assert store.volume("cp1", "disk1").size == 8 * MIB


def test_unknown_vm_dataset_and_bad_names(tank, guest_runtime):
    store = open_datastore(guest_runtime(), "zfs")
    with pytest.raises(NotFound, match="does not exist"):
        store.create_volume("nosuchvm", "disk0", MIB)
    with pytest.raises(ValidationErrors, match="volume"):
        store.volume("x", "../etc")
    store.create_vm_dir("dup1")
    with pytest.raises(Conflict, match="already exists"):
        store.create_vm_dir("dup1")


def create(runtime, name: str, owner: str = "alice", **spec):
    overrides = {"boot": {"mode": "bhyveload"}, "disks": [{"size": "16M"}, {"size": "8M"}], "nics": [{}], **spec}
    return create_vm(task_context(runtime, "vm.create", owner), name, overrides=overrides)


def test_vm_create_records_identity_and_import_vms_registers_after_export_import(tank, guest_runtime, tmp_path):
    runtime = guest_runtime()
    created = create(runtime, "imp1", description="from the old host")
    assert created["disks"] == ["/dev/zvol/tank/bhype/vms/imp1/disk0", "/dev/zvol/tank/bhype/vms/imp1/disk1"]
    assert zfs_get(tank, "org.bhype:uuid", "tank/bhype/vms/imp1") == created["uuid"]
    assert zfs_get(tank, "org.bhype:owner", "tank/bhype/vms/imp1") == "alice"
    spec = json.loads(zfs_get(tank, "org.bhype:spec", "tank/bhype/vms/imp1"))
    assert spec["description"] == "from the old host" and spec["name"] == "imp1"

    run = tank.shared_runner.run
    run(["zpool", "export", "tank"])
    run(["zpool", "import", "-d", "/dev/disk/by-id", "tank"])

    # A fresh host: its own empty database, the same pool.
    fresh = guest_runtime(data="fresh-host")
    with Session(fresh.engine) as db:
        assert find_vm(db, "imp1") is None
    store = open_datastore(fresh, "zfs")
    found = {vm.name: vm for vm in import_vms.discover(store.host, store)}
    assert found["imp1"].uuid == created["uuid"] and found["imp1"].volumes == ["disk0", "disk1"]
    result = import_vms_task(task_context(fresh, "zfs.import_vms", "admin"))
    statuses = {vm["name"]: vm["status"] for vm in result["vms"]}
    assert statuses["imp1"] == "registered"
    with Session(fresh.engine) as db:
        row = find_vm(db, "imp1")
    assert (row.uuid, row.owner, row.datastore) == (created["uuid"], "alice", "zfs")
    assert row.spec["nics"][0]["mac"] == spec["nics"][0]["mac"]
    again = import_vms_task(task_context(fresh, "zfs.import_vms", "admin"))
    assert {vm["name"]: vm["status"] for vm in again["vms"]}["imp1"] == "already registered"


def test_import_vms_without_vm_records_returns_what_it_found(tank, guest_runtime):
    runtime = guest_runtime()
    create(runtime, "imp2")
    tank.shared_runner.run(["zfs", "create", "-o", "org.bhype:name=bare", "tank/bhype/vms/bare"])
    bare_runtime = guest_runtime(with_core_vms=False)
    store = zfs_backend(bare_runtime, {"name": "zfs", "dataset": "tank/bhype"})
    bare_context = task_context(bare_runtime, "zfs.import_vms", "admin")
    found = import_vms.register(bare_context, store, import_vms.discover(store.host, store))
    by_name = {vm.name: vm for vm in found}
    assert by_name["imp2"].status == "not registered"
    assert "core_vms" in by_name["imp2"].detail
    assert by_name["imp2"].spec["name"] == "imp2"
    assert by_name["bare"].uuid is None
    context = task_context(runtime, "zfs.import_vms", "admin")
    with_records = import_vms.register(context, store, import_vms.discover(store.host, store))
    by_name = {vm.name: vm for vm in with_records}
    assert by_name["bare"].status == "skipped" and "org.bhype:uuid" in by_name["bare"].detail
    assert by_name["imp2"].status == "already registered"


def test_uefi_vm_keeps_its_nvram_in_the_dataset_on_the_runners_host(tank, guest_runtime, tmp_path):
    """The VM directory is the dataset's mountpoint on the guest, not on this machine: the
    UEFI variable store is copied there, and destroy removes what is there."""
    from bhype_core.vm.destroy import destroy_vm
    from bhype_core.vm.firmware import FirmwareMissing, nvram_template
    from bhype_core.vm.power import PreflightFailed, start_vm
    from bhype_core.vm.services import active_driver

    runtime = guest_runtime()
    run = tank.shared_runner.run
    template, _ = nvram_template(active_driver(runtime))
    run(["rm", "-f", str(template)])
    with pytest.raises(FirmwareMissing, match=str(template)):
        create(runtime, "uefi0", boot={"mode": "uefi"})
    assert run(["zfs", "list", "tank/bhype/vms/uefi0"], check=False).returncode == 1  # rolled back

    vars_image = bytes(range(256)) * 2048  # stands in for the host's OVMF vars template
    run(["mkdir", "-p", str(template.parent)])
    run(["dd", f"of={template}", "status=none"], input=vars_image)
    create(runtime, "uefi1", boot={"mode": "uefi"})
    create(runtime, "uefi2", boot={"mode": "uefi"})
    nvram = "/tank/bhype/vms/uefi1/OVMF_VARS.fd"
    assert run(["stat", "-c", "%a %s", nvram]).stdout.split() == ["600", str(len(vars_image))]
    assert run(["cmp", str(template), nvram], check=False).returncode == 0
    assert not (tmp_path / "tank").exists()  # nothing was written on this machine

    with pytest.raises(PreflightFailed, match="runner.target is ssh://"):  # the hypervisor would run here
        start_vm(task_context(runtime, "vm.start"), "uefi1")

    kept = destroy_vm(task_context(runtime, "vm.destroy"), "uefi1", keep_disks=True)
    assert kept["kept"] == ["/dev/zvol/tank/bhype/vms/uefi1/disk0", "/dev/zvol/tank/bhype/vms/uefi1/disk1"]
    assert kept["removed"] == [nvram]
    assert run(["ls", "-A", "/tank/bhype/vms/uefi1"]).stdout == ""
    assert zfs_get(tank, "type", "tank/bhype/vms/uefi1/disk0") == "volume"  # the disks stay

    gone = destroy_vm(task_context(runtime, "vm.destroy"), "uefi2")
    assert "/tank/bhype/vms/uefi2" in gone["removed"]
    assert run(["zfs", "list", "tank/bhype/vms/uefi2"], check=False).returncode == 1
    run(["rm", "-f", str(template)])
