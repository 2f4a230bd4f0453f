"""A point on a *file* target restored onto a ZFS datastore whose disks are zvols, on real
OpenZFS (the session's ZFS guest) reached over SSH through ``[runner]``, as a remote datastore
host would be; the target is a directory on this machine (``runtime.local_runner``).

A VM with two zvol disks of known content is backed up (``snapshot`` mode: a block copy of its
held snapshot, zfs_blocks.py) to the directory target, then restored as a new VM and over the
same stopped VM (with ``confirm``); the zvols' sha256, read in the guest, equal the originals.
A damaged point and a datastore without room for the second zvol (reserved zvols under a
quota) fail the restore and leave no zvol, dataset or VM record of a new VM behind, and a damaged
point leaves the old VM's disk as it was.
"""

from __future__ import annotations

import pytest

import bhype_backup.jobs_plugin
import bhype_backup.plugin
import bhype_zfs.plugin
from bhype_backup.backup_run import run_backup
from bhype_backup.endpoint import Endpoint
from bhype_backup.manifest import parse_manifest
from bhype_backup.points import get_point
from bhype_backup.restore import RestoreMismatch, restore
from bhype_backup.restore_disk import sha256_on_datastore
from bhype_backup.targets import add_target, get_target
from bhype_core.db.migrate import upgrade
from bhype_core.plugin_api import ValidationErrors, find_vm, open_datastore
from bhype_core.runtime import build_runtime
from bhype_core.tasks import TaskContext
from bhype_core.testing import make_settings
from bhype_core.testing.zfs_guest import guest_sha256
from bhype_core.vm.create import create_vm

pytestmark = [pytest.mark.guest, pytest.mark.slow]
MIB = 2**20
VMS = "tank/bhype/vms"


def guest_settings(data_dir, host, sparse: bool = True):
    """Settings whose runner drives the ZFS guest and whose ``zfs`` datastore is tank/bhype
    (as in tests/zfs/helpers.py)."""
    return make_settings(data_dir, core={"platform": "linux"}, zfs={"pool": "tank", "platform": "linux"},
                         runner={"target": host.target, "ssh_identity": str(host.identity),
                                 "ssh_options": list(host.options), "default_timeout": 300},
                         vm={"datastores": {"zfs": {"backend": "zfs", "dataset": "tank/bhype", "sparse": sparse}},
                             "default_datastore": "zfs"})


def task_context(runtime, kind: str, user: str = "alice") -> TaskContext:
    return TaskContext(runtime, task_id=f"test-{kind}", kind=kind, user=user)


def run(host, *argv: str, **kwargs):
    return host.shared_runner.run(list(argv), **kwargs)


@pytest.fixture(scope="module")
def tank(zfs_host):
    """Pool ``tank`` with bHype's layout, for this module."""
    zfs_host.reset()
    run(zfs_host, "zpool", "create", "-m", "/tank", "-O", "compression=lz4", "tank",
        zfs_host.disk_path(zfs_host.disks[0]))
    for dataset in ("tank/bhype", VMS, "tank/bhype/isos", "tank/bhype/templates"):
        run(zfs_host, "zfs", "create", dataset)
    yield zfs_host
    run(zfs_host, "zpool", "destroy", "-f", "tank", check=False)


@pytest.fixture
def world(tank, tmp_path, plugin_manager, register_plugin):
    """A migrated runtime driving the guest (datastore ``zfs`` = tank/bhype, zvol disks) with the
    directory target ``usb`` on this machine."""
    from bhype_core.builtins import drivers, models, vm_tasks

    for plugin, name in ((models, "core_models"), (vm_tasks, "core_vms"), (drivers, "core_drivers"),
                         (bhype_zfs.plugin, "zfs"), (bhype_backup.plugin, "backup"),
                         (bhype_backup.jobs_plugin, "backup_jobs")):
        register_plugin(plugin, name)
    runtime = build_runtime(guest_settings(tmp_path / "data", tank), plugin_manager)
    upgrade(runtime)
    assert runtime.local_runner is not runtime.runner  # the datastore is on another host
    (tmp_path / "usb").mkdir()
    add_target(task_context(runtime, "backup.target_add"), "usb", str(tmp_path / "usb"))
    yield runtime
    runtime.runner.close()
    runtime.engine.dispose()


def make_vm(runtime, host, name: str) -> list[str]:
    """A stopped VM on tank with zvol disks of 16 and 8 MiB, random data at known places, and a
    cloud-init seed file; returns the two zvol devices."""
    create_vm(task_context(runtime, "vm.create"), name,
              overrides={"boot": {"mode": "bhyveload"}, "disks": [{"size": "16M"}, {"size": "8M"}], "nics": [{}],
                         "cloud_init": {"meta_data": {"instance-id": f"i-{name}", "local-hostname": name}}})
    run(host, "dd", f"of=/tank/bhype/vms/{name}/cidata.iso", input=f"seed of {name}\n".encode() * 999)
    devices = [f"/dev/zvol/{VMS}/{name}/disk0", f"/dev/zvol/{VMS}/{name}/disk1"]
    run(host, "udevadm", "settle")
    write(host, devices[0], 5, seek_mib=2)  # holes before, between and after
    write(host, devices[0], 3, seek_mib=12)
    write(host, devices[1], 4, seek_mib=1)
    return devices


def write(host, device: str, mib: int, seek_mib: int = 0) -> None:
    run(host, "dd", "if=/dev/urandom", f"of={device}", "bs=1M", f"count={mib}", f"seek={seek_mib}", "conv=fsync")


def first_mib_sha(host, device: str, mib: int) -> str:
    """sha256 of the first ``mib`` MiB of ``device``, through a copy in the guest."""
    copy = f"/tmp/bhype-head-{device.rsplit('/', 1)[-1]}"
    run(host, "dd", f"if={device}", f"of={copy}", "bs=1M", f"count={mib}")
    try:
        return guest_sha256(host.shared_runner, copy)
    finally:
        run(host, "rm", "-f", copy)


def datasets(host, name: str) -> list[str]:
    result = run(host, "zfs", "list", "-H", "-o", "name", "-r", f"{VMS}/{name}", check=False)
    return result.stdout.split() if result.returncode == 0 else []


def manifest_files(runtime, tmp_path, point_id: int):
    point = get_point(runtime, point_id)
    return parse_manifest((tmp_path / "usb" / point.path / "manifest.json").read_bytes()).files


def stored_file(runtime, tmp_path, point_id: int, volume: str):
    entry = next(f for f in manifest_files(runtime, tmp_path, point_id) if f.volume == volume)
    return tmp_path / "usb" / get_point(runtime, point_id).path / entry.stored, entry


def test_file_point_restored_onto_zvols_as_new_vm_and_over_the_same_vm(world, tank, tmp_path):
    runtime, host = world, tank
    devices = make_vm(runtime, host, "zr1")
    original = [guest_sha256(host.shared_runner, d) for d in devices]
    point = run_backup(task_context(runtime, "backup.run"), "zr1", "usb", "snapshot")
    assert point["consistency"] == "consistent"
    stored, entry = stored_file(runtime, tmp_path, point["point"], "disk0")
    assert entry.size == 16 * MIB and entry.sha256 == original[0]
    assert stored.stat().st_blocks * 512 < 12 * MIB  # the holes stayed holes on the target

    # As a new VM on tank: zvols (not files), bit-identical, the seed back, a new identity.
    result = restore(task_context(runtime, "backup.restore"), point["point"], **{"as": "zr1copy"})
    assert result["new_vm"] is True and result["datastore"] == "zfs"
    assert sorted(result["restored"]) == ["cidata.iso", "disk0", "disk1"]
    copies = [f"/dev/zvol/{VMS}/zr1copy/disk0", f"/dev/zvol/{VMS}/zr1copy/disk1"]
    assert [guest_sha256(host.shared_runner, d) for d in copies] == original
    kinds = run(host, "zfs", "get", "-Hp", "-o", "value", "type,volsize", f"{VMS}/zr1copy/disk0").stdout.split()
    assert kinds == ["volume", str(16 * MIB)]
    seed = run(host, "cat", "/tank/bhype/vms/zr1copy/cidata.iso").stdout
    assert seed == "seed of zr1\n" * 999
    seed_entry = next(f for f in manifest_files(runtime, tmp_path, point["point"]) if f.original == "cidata.iso")
    mode = run(host, "stat", "-c", "%a", "/tank/bhype/vms/zr1copy/cidata.iso").stdout.strip()
    assert int(mode, 8) == int(seed_entry.mode, 8)  # the manifest's mode, set on the datastore's host
    assert find_vm(runtime, "zr1copy").uuid != find_vm(runtime, "zr1").uuid
    store = open_datastore(runtime, "zfs")  # the datastore says what a disk is
    assert store.volume("zr1copy", "disk0").device is True and store.volume("zr1copy", "disk0").size == 16 * MIB
    # Fresh zvols were written sparsely: about the data, not 24 MiB.
    used = int(run(host, "zfs", "get", "-Hp", "-o", "value", "used", f"{VMS}/zr1copy").stdout)
    assert used < 16 * MIB
    assert not list(tmp_path.glob("bhype-restore-*"))

    # Over the same stopped VM: its disks changed (disk0 grown since), the point's data comes back.
    write(host, devices[0], 6, seek_mib=0)
    write(host, devices[1], 8)
    run(host, "zfs", "set", f"volsize={24 * MIB}", f"{VMS}/zr1/disk0")
    assert guest_sha256(host.shared_runner, devices[1]) != original[1]
    with pytest.raises(ValidationErrors, match="confirm"):
        restore(task_context(runtime, "backup.restore"), point["point"])
    again = restore(task_context(runtime, "backup.restore"), point["point"], confirm=True)
    assert again["new_vm"] is False and "disk0" in again["restored"] and "disk1" in again["restored"]
    assert guest_sha256(host.shared_runner, devices[1]) == original[1]
    assert first_mib_sha(host, devices[0], 16) == original[0]  # the grown disk's first 16 MiB
    assert datasets(host, "zr1") == [f"{VMS}/zr1", f"{VMS}/zr1/disk0", f"{VMS}/zr1/disk1"]
    leftovers = run(host, "ls", "-A", "/tank/bhype/vms/zr1").stdout.split()
    assert not [name for name in leftovers if name.endswith(".restore")]

    # The check reads the device on the datastore's host: a changed byte is seen there.
    entry1 = stored_file(runtime, tmp_path, point["point"], "disk1")[1]
    assert sha256_on_datastore(runtime.runner, devices[1], entry1.size, 8 * MIB) == entry1.sha256
    run(host, "dd", "if=/dev/urandom", f"of={devices[1]}", "bs=512", "count=1", "seek=4000", "conv=fsync")
    assert sha256_on_datastore(runtime.runner, devices[1], entry1.size, 8 * MIB) != entry1.sha256
    # …and over a prefix of a larger disk (head -c | sha256sum on the guest).
    assert sha256_on_datastore(runtime.runner, devices[0], 16 * MIB, 24 * MIB) == original[0]


def test_damaged_point_or_full_datastore_leave_nothing_half_created(world, tank, tmp_path):
    runtime, host = world, tank
    devices = make_vm(runtime, host, "zr2")
    point = run_backup(task_context(runtime, "backup.run"), "zr2", "usb", "snapshot")
    before = [guest_sha256(host.shared_runner, d) for d in devices]

    # The target changed one byte of disk1 (the second disk: disk0 is already written then).
    stored, _ = stored_file(runtime, tmp_path, point["point"], "disk1")
    with stored.open("r+b") as handle:
        handle.seek(MIB + 100)
        byte = handle.read(1)
        handle.seek(MIB + 100)
        handle.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(RestoreMismatch, match="disk disk1: 1 chunk"):
        restore(task_context(runtime, "backup.restore"), point["point"], **{"as": "zr2bad"})
    assert datasets(host, "zr2bad") == []
    assert find_vm(runtime, "zr2bad") is None
    # Over the same VM the damaged disk is refused before its zvol is touched.
    write(host, devices[1], 2, seek_mib=5)
    changed = guest_sha256(host.shared_runner, devices[1])
    with pytest.raises(RestoreMismatch):
        restore(task_context(runtime, "backup.restore"), point["point"], confirm=True)
    assert guest_sha256(host.shared_runner, devices[1]) == changed
    assert guest_sha256(host.shared_runner, devices[0]) == before[0]  # disk0 rewritten with the same data
    with stored.open("r+b") as handle:  # mended: the point is good again
        handle.seek(MIB + 100)
        handle.write(byte)

    # The datastore has no room for the second zvol (a datastore with reserved, non-sparse zvols
    # under a quota): the first zvol was created and written, then everything is removed again.
    full_store = build_runtime(guest_settings(tmp_path / "data", host, sparse=False), runtime.pm)
    used = int(run(host, "zfs", "get", "-Hp", "-o", "value", "used", VMS).stdout)
    run(host, "zfs", "set", f"quota={used + 20 * MIB}", VMS)
    try:
        with pytest.raises(Exception, match="disk1|quota|space"):
            restore(task_context(full_store, "backup.restore"), point["point"], **{"as": "zr2full"})
    finally:
        run(host, "zfs", "set", "quota=none", VMS)
        full_store.runner.close()
        full_store.engine.dispose()
    assert datasets(host, "zr2full") == []
    assert find_vm(runtime, "zr2full") is None
    # With space again the same point restores as that VM.
    restore(task_context(runtime, "backup.restore"), point["point"], **{"as": "zr2full"})
    full = [f"/dev/zvol/{VMS}/zr2full/disk0", f"/dev/zvol/{VMS}/zr2full/disk1"]
    assert [guest_sha256(host.shared_runner, d) for d in full] == before
    endpoint = Endpoint(runtime, get_target(runtime, "usb"))
    assert endpoint.runner is runtime.local_runner
