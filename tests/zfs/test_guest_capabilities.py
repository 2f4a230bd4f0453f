"""The ZFS datastore's capabilities (issue 12) on real OpenZFS (the ZFS test guest over SSH): a
held consistent point of every disk, its ``zfs send`` stream piped into ``zfs receive`` by the
runner, release, the snapshot's files for rsync, and space and per-disk use.

Commands: zfs-snapshot(8) ``-r``, zfs-hold(8)/zfs-release(8)/zfs-holds(8), zfs-send(8),
zfs-receive(8), zfs-list(8)/zfs-get(8) ``-Hp``, find(1), du(1).
"""

from __future__ import annotations

import pytest

from bhype_core.errors import Conflict, NotSupported
from bhype_core.storage.capabilities import StorageCapability
from bhype_core.vm.services import open_datastore

pytestmark = [pytest.mark.guest, pytest.mark.slow]
MIB = 2**20


def test_a_held_point_streams_into_a_receive_and_is_gone_after_release(tank, guest_runtime):
    store = open_datastore(guest_runtime(), "zfs")
    store.create_vm_dir("pt1")
    disks = [store.create_volume("pt1", f"disk{index}", 8 * MIB) for index in range(2)]
    run = tank.shared_runner.run
    for disk in disks:
        run(["dd", f"of={disk.path}", "bs=512", "count=1", "conv=sync,fsync"], input=f"before {disk.name}".encode())

    point = store.snapshot("pt1", ["disk0", "disk1"], "bhype-backup", name="p1")
    for disk in disks:  # written after the point: the point keeps the old bytes
        run(["dd", f"of={disk.path}", "bs=512", "count=1", "conv=sync,fsync"], input=b"after")

    holds = run(["zfs", "holds", "-H", "-r", "tank/bhype/vms/pt1@p1"]).stdout
    assert {line.split("\t")[0] for line in holds.splitlines()} == {
        "tank/bhype/vms/pt1@p1", "tank/bhype/vms/pt1/disk0@p1", "tank/bhype/vms/pt1/disk1@p1"}
    with pytest.raises(Conflict):  # held: nobody can destroy it, retention included
        store.host.run(["zfs", "destroy", "tank/bhype/vms/pt1/disk0@p1"])

    stream = store.export_stream(point, "disk0")
    run(["zfs", "create", "tank/restore"])
    store.host.pipe(stream.producer, ["zfs", "receive", "-u", "tank/restore/disk0"])
    store.wait_for_device("/dev/zvol/tank/restore/disk0")
    restored = run(["dd", "if=/dev/zvol/tank/restore/disk0", "bs=512", "count=1"]).stdout_bytes
    assert restored.startswith(b"before disk0")

    store.release(point)
    listed = run(["zfs", "list", "-H", "-t", "snapshot", "-o", "name", "-r", "tank/bhype/vms/pt1"]).stdout
    assert listed == ""
    run(["zfs", "destroy", "-r", "tank/restore"])


def test_a_point_another_tag_holds_stays_after_release(tank, guest_runtime):
    store = open_datastore(guest_runtime(), "zfs")
    store.create_vm_dir("pt2")
    store.create_volume("pt2", "disk0", 8 * MIB)
    point = store.snapshot("pt2", ["disk0"], "bhype-backup", name="p1")
    run = tank.shared_runner.run
    run(["zfs", "hold", "-r", "bhype-move", "tank/bhype/vms/pt2@p1"])
    store.release(point)
    assert run(["zfs", "list", "-H", "-o", "name", "tank/bhype/vms/pt2/disk0@p1"]).stdout.strip()
    run(["zfs", "release", "-r", "bhype-move", "tank/bhype/vms/pt2@p1"])


def test_space_and_disk_use_match_zfs_and_file_points_list_their_files(tank, guest_runtime):
    runtime = guest_runtime(vm={"datastores": {"zfs": {"backend": "zfs", "dataset": "tank/bhype"},
                                               "files": {"backend": "zfs", "dataset": "tank/bhype",
                                                         "disk_type": "file"}}})
    store = open_datastore(runtime, "zfs")
    run = tank.shared_runner.run
    store.create_vm_dir("st1")
    volume = store.create_volume("st1", "disk0", 64 * MIB)
    run(["dd", "if=/dev/urandom", f"of={volume.path}", "bs=1M", "count=4", "conv=fsync"])
    run(["zfs", "snapshot", "tank/bhype/vms/st1/disk0@settle"])  # referenced is exact once synced
    stats = store.volume_stats("st1", "disk0")
    assert stats.size == 64 * MIB and 4 * MIB <= stats.used < 16 * MIB
    space = store.space()
    used, avail = (int(v) for v in run(["zfs", "list", "-Hp", "-o", "used,avail", "tank/bhype"]).stdout.split())
    assert (space.used, space.free, space.size) == (used, avail, used + avail)
    with pytest.raises(NotSupported):
        store.export_files("st1")  # zvols are devices, not files rsync reads

    files = open_datastore(runtime, "files")
    assert StorageCapability.EXPORT_FILES in files.capabilities
    files.create_vm_dir("st2")
    files.create_volume("st2", "disk0", 8 * MIB)
    point = files.snapshot("st2", ["disk0"], "bhype-backup", name="p1")
    export = files.export_files("st2", point)
    assert str(export.root).endswith("/st2/.zfs/snapshot/p1") and export.consistent
    assert export.files == ["disk0.img"]
    assert files.volume_stats("st2", "disk0").size == 8 * MIB
    files.release(point)
