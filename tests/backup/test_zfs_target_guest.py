"""Backups to a ZFS target on real OpenZFS (the session's ZFS guest): ``zfs send -i`` from the
newest common snapshot, holds on both sides, restores checked bit for bit, failed and cancelled
sends that leave nothing, and the full fallback when the chain is broken.

The guest is both hosts: the datastore's pool ``tank`` (reached through ``[runner]`` over SSH,
as a remote datastore host would be) and the backup host's pool ``bpool`` (reached as the ZFS
target ``zfs://root@127.0.0.1:PORT/bpool/bk`` with a pinned host key and a stored private key,
from this machine: ``runtime.local_runner``). One guest boot for the whole module.
"""

from __future__ import annotations

import time

import pytest

import bhype_backup.jobs_plugin
import bhype_backup.plugin
import bhype_zfs.plugin
from bhype_backup import targets
from bhype_backup.backup_run import run_backup
from bhype_backup.manifest import parse_manifest
from bhype_backup.points import delete_point, get_point, list_points
from bhype_backup.restore import restore
from bhype_backup.targets import add_target, get_target
from bhype_backup.zfs_target import ZfsTarget
from bhype_core.db.migrate import upgrade
from bhype_core.runtime import build_runtime
from bhype_core.tasks import Cancelled, TaskContext
from bhype_core.testing import make_settings
from bhype_core.transfer import TransferFailed
from bhype_core.vm.create import create_vm

pytestmark = [pytest.mark.guest, pytest.mark.slow]
MIB = 2**20


def guest_settings(data_dir, host):
    """Settings whose runner drives the ZFS guest and whose ``zfs`` datastore is tank/bhype."""
    return make_settings(data_dir, core={"platform": "linux"}, zfs={"pool": "tank", "platform": "linux"},
                         runner={"target": host.target, "ssh_identity": str(host.identity),
                                 "ssh_options": list(host.options), "default_timeout": 300},
                         vm={"datastores": {"zfs": {"backend": "zfs", "dataset": "tank/bhype"}},
                             "default_datastore": "zfs"})


def task_context(runtime, kind: str, user: str = "alice") -> TaskContext:
    """What the worker hands a task's code (called directly here)."""
    return TaskContext(runtime, task_id=f"test-{kind}", kind=kind, user=user)


@pytest.fixture(scope="module")
def pools(zfs_host):
    """``tank`` (the datastore, bHype's layout) and ``bpool`` (the backup host), for this module."""
    zfs_host.reset()
    run = zfs_host.shared_runner.run
    run(["zpool", "create", "-m", "/tank", "-O", "compression=lz4", "tank", zfs_host.disk_path(zfs_host.disks[0])])
    run(["zpool", "create", "-m", "/bpool", "-O", "compression=lz4", "bpool", zfs_host.disk_path(zfs_host.disks[1])])
    for dataset in ("tank/bhype", "tank/bhype/vms", "tank/bhype/isos", "tank/bhype/templates"):
        run(["zfs", "create", dataset])
    yield zfs_host
    run(["zpool", "destroy", "-f", "tank"], check=False)
    run(["zpool", "destroy", "-f", "bpool"], check=False)


@pytest.fixture
def world(pools, tmp_path, plugin_manager, register_plugin):
    """A migrated runtime (core, zfs and backup plugins) driving the guest, with target ``zt``."""
    from bhype_core.builtins import drivers, models, vm_tasks

    for plugin, name in ((models, "core_models"), (vm_tasks, "core_vms"), (drivers, "core_drivers"),
                         (bhype_zfs.plugin, "zfs"), (bhype_backup.plugin, "backup"),
                         (bhype_backup.jobs_plugin, "backup_jobs")):  # declares backup.verify_mismatch
        register_plugin(plugin, name)
    runtime = build_runtime(guest_settings(tmp_path / "data", pools), plugin_manager)
    upgrade(runtime)
    add_target(task_context(runtime, "backup.target_add"), "zt", f"zfs://root@127.0.0.1:{pools.port}/bpool/bk",
               key=pools.identity.read_text())
    yield runtime
    runtime.runner.close()
    runtime.engine.dispose()


def run(host, *argv: str, **kwargs):
    return host.shared_runner.run(list(argv), **kwargs)


def make_vm(runtime, host, name: str, size: str = "32M") -> str:
    """A stopped VM on tank with one zvol disk and a cloud-init seed file; returns the zvol device."""
    create_vm(task_context(runtime, "vm.create"), name,
              overrides={"boot": {"mode": "bhyveload"}, "disks": [{"size": size}], "nics": [{}],
                         "cloud_init": {"meta_data": {"instance-id": f"i-{name}", "local-hostname": name}}})
    device = f"/dev/zvol/tank/bhype/vms/{name}/disk0"
    # The seed is written at each start (cloudinit.write_seed); this VM never starts: put one there.
    run(host, "dd", f"of=/tank/bhype/vms/{name}/cidata.iso", input=f"seed of {name}\n".encode() * 999)
    run(host, "udevadm", "settle")
    run(host, "test", "-b", device)
    return device


def write(host, device: str, mib: int, seek_mib: int = 0) -> None:
    run(host, "dd", "if=/dev/urandom", f"of={device}", "bs=1M", f"count={mib}", f"seek={seek_mib}", "conv=fsync")


def sha(host, path: str) -> str:
    return run(host, "sha256sum", path).stdout.split()[0]


def snaps(host, dataset: str) -> list[str]:
    out = run(host, "zfs", "list", "-H", "-o", "name", "-t", "snapshot", "-d", "1", dataset, check=False).stdout
    return [line.split("@", 1)[1] for line in out.split()]


def holds(host, snapshot: str) -> set[str]:
    out = run(host, "zfs", "holds", "-H", "-r", snapshot).stdout
    return {(line.split("\t")[0], line.split("\t")[1]) for line in out.splitlines()}


def manifest_of(runtime, point_id: int):
    point = get_point(runtime, point_id)
    target = ZfsTarget(runtime, get_target(runtime, "zt"))
    return parse_manifest(target.read_manifest(point.path))


def test_full_incremental_holds_restore_and_retention(world, pools):
    runtime, host = world, pools
    assert targets.test_target(task_context(runtime, "backup.target_test"), "zt")["ok"]
    device = make_vm(runtime, host, "zb1")
    write(host, device, 12)
    full = run_backup(task_context(runtime, "backup.run"), "zb1", "zt", "snapshot")
    uuid = get_point(runtime, full["point"]).vm_uuid
    first_snap = full["path"].split("@")[1]
    assert full["full"] is True and full["basis"] is None and full["path"] == f"{uuid}@{first_snap}"
    assert first_snap.startswith("bhype-backup-zt.")
    assert full["bytes_sent"] >= 12 * MIB
    # Held on both sides: the source's base and the target's point.
    assert ("tank/bhype/vms/zb1/disk0@" + first_snap, "bhype-backup") in holds(host, f"tank/bhype/vms/zb1@{first_snap}")
    assert (f"bpool/bk/{uuid}/disk0@{first_snap}", "bhype-backup") in holds(host, f"bpool/bk/{uuid}@{first_snap}")
    first_sha = sha(host, device)
    disk_entry = next(f for f in manifest_of(runtime, full["point"]).files if f.volume == "disk0")
    assert disk_entry.sha256 == first_sha and disk_entry.size == 32 * MIB
    assert any(f.original == "cidata.iso" and f.role == "config" for f in manifest_of(runtime, full["point"]).files)

    write(host, device, 1, seek_mib=20)
    second = run_backup(task_context(runtime, "backup.run"), "zb1", "zt", "snapshot")
    second_snap = second["path"].split("@")[1]
    assert second["full"] is False and second["basis"] == f"{uuid}@{first_snap}"
    assert MIB <= second["bytes_sent"] < 3 * MIB and second["bytes_sent"] * 4 < full["bytes_sent"]
    # The earlier base is released and destroyed on the source only now; the target keeps both points.
    assert snaps(host, "tank/bhype/vms/zb1") == [second_snap]
    assert snaps(host, f"bpool/bk/{uuid}/disk0") == [first_snap, second_snap]
    assert [p.id for p in list_points(runtime, vm="zb1")] == [second["point"], full["point"]]
    second_sha = sha(host, device)
    assert second_sha != first_sha

    # Restore the newest point as a new VM: bit-identical, new identity, the seed file back.
    result = restore(task_context(runtime, "backup.restore"), second["point"], **{"as": "zb1copy"})
    assert result["new_vm"] is True and result["uuid"] != uuid
    run(host, "udevadm", "settle")
    assert sha(host, "/dev/zvol/tank/bhype/vms/zb1copy/disk0") == second_sha
    volmode = run(host, "zfs", "get", "-H", "-o", "value", "volmode", "tank/bhype/vms/zb1copy/disk0").stdout
    assert volmode.strip() == "dev"
    assert run(host, "test", "-f", "/tank/bhype/vms/zb1copy/cidata.iso", check=False).returncode == 0
    assert snaps(host, "tank/bhype/vms/zb1copy") == []

    # Restore the first point over the stopped VM: its disk is the first point's again.
    restored = restore(task_context(runtime, "backup.restore"), full["point"], confirm=True)
    assert restored["restored"][0] == "disk0"
    run(host, "udevadm", "settle")
    assert sha(host, device) == first_sha
    assert "disk0.bhype-old" not in run(host, "zfs", "list", "-H", "-o", "name", "-r", "tank/bhype/vms/zb1").stdout

    # Retention / delete: the point's hold is released and its snapshots destroyed on the target.
    delete_point(runtime, full["point"])
    assert snaps(host, f"bpool/bk/{uuid}") == [second_snap]
    # A restore made the disk new data: the next backup finds no common snapshot and says so.
    again = run_backup(task_context(runtime, "backup.run"), "zb1", "zt", "snapshot")
    assert again["full"] is True and "broken chain" in again["warnings"][0]
    assert again["path"].startswith(f"{uuid}-{again['point']}@")


def assert_only_base_held(host, base_snap: str) -> None:
    """After an undone run: the base is still held; this run's snapshot is gone or, when the cut
    `zfs send` behind the SSH runner still reads it, released (the next run destroys it)."""
    names = snaps(host, "tank/bhype/vms/zb2")
    assert base_snap in names
    for name in names:
        tags = {tag for _, tag in holds(host, f"tank/bhype/vms/zb2@{name}")}
        assert tags == ({"bhype-backup"} if name == base_snap else set())


def test_failed_and_cancelled_sends_leave_nothing_and_the_next_run_goes_on(world, pools):
    runtime, host = world, pools
    device = make_vm(runtime, host, "zb2", size="96M")
    write(host, device, 4)
    base = run_backup(task_context(runtime, "backup.run"), "zb2", "zt", "snapshot")
    uuid = get_point(runtime, base["point"]).vm_uuid
    base_snap = base["path"].split("@")[1]
    before = run(host, "zfs", "list", "-H", "-o", "name", "-r", "-t", "all", "bpool/bk").stdout

    # Failed: the target has no room (a quota); the receive fails, nothing of the run stays.
    write(host, device, 40, seek_mib=8)
    run(host, "zfs", "set", "quota=20M", f"bpool/bk/{uuid}")
    with pytest.raises(TransferFailed):
        run_backup(task_context(runtime, "backup.run"), "zb2", "zt", "snapshot")
    run(host, "zfs", "set", "quota=none", f"bpool/bk/{uuid}")
    assert run(host, "zfs", "list", "-H", "-o", "name", "-r", "-t", "all", "bpool/bk").stdout == before
    assert_only_base_held(host, base_snap)
    assert [p.id for p in list_points(runtime, vm="zb2")] == [base["point"]]

    # Cancelled part way: both sides stop, the partial receive is discarded, no row, no snapshot.
    # The cancel comes 0.3 s into the disk's stream (or, if that was faster, at the safe point
    # right after it): either way the run stops and undoes itself.
    context = task_context(runtime, "backup.run")
    sending: list[float] = []
    log = context.log

    def watch(message, *args, **kwargs):
        if message.startswith("zfs send") and "disk0@" in message:
            sending.append(time.monotonic())
        return log(message, *args, **kwargs)

    context.log = watch
    context.cancel_requested = lambda: bool(sending) and time.monotonic() - sending[0] > 0.3
    with pytest.raises(Cancelled):
        run_backup(context, "zb2", "zt", "snapshot")
    after = run(host, "zfs", "list", "-H", "-o", "name", "-r", "-t", "all", "bpool/bk").stdout
    assert after == before and "%" not in after
    assert_only_base_held(host, base_snap)

    # The next run sends the change from the base that stayed held on both sides.
    nxt = run_backup(task_context(runtime, "backup.run"), "zb2", "zt", "snapshot")
    assert nxt["full"] is False and nxt["basis"] == f"{uuid}@{base_snap}"
    assert 40 * MIB <= nxt["bytes_sent"] < 48 * MIB
    assert sha(host, device) == next(f.sha256 for f in manifest_of(runtime, nxt["point"]).files if f.volume == "disk0")
    assert base_snap not in snaps(host, "tank/bhype/vms/zb2")  # the old base, released after the new point

    # A target that lost the common snapshot: full send to a new chain, and the point says so.
    newest = nxt["path"].split("@")[1]
    run(host, "zfs", "release", "-r", "bhype-backup", f"bpool/bk/{uuid}@{newest}")
    run(host, "zfs", "destroy", "-r", f"bpool/bk/{uuid}@{newest}")
    run(host, "zfs", "release", "-r", "bhype-backup", f"bpool/bk/{uuid}@{base_snap}")
    run(host, "zfs", "destroy", "-r", f"bpool/bk/{uuid}@{base_snap}")
    fallback = run_backup(task_context(runtime, "backup.run"), "zb2", "zt", "snapshot")
    assert fallback["full"] is True and fallback["bytes_sent"] >= 44 * MIB
    assert "broken chain" in get_point(runtime, fallback["point"]).note
    assert fallback["path"].startswith(f"{uuid}-{fallback['point']}@")


def test_zvol_snapshot_to_a_file_target_is_a_sparse_block_copy(world, pools, tmp_path):
    """A ZFS source (zvol disks) to an rsync target: the held snapshot's device is copied block
    by block (holes kept) and sent with rsync's delta algorithm; the snapshot is released after."""
    import hashlib

    runtime, host = world, pools
    device = make_vm(runtime, host, "zb3", size="64M")
    write(host, device, 6, seek_mib=10)  # data in the middle, zeros (holes) around it
    files = tmp_path / "files"
    files.mkdir()
    add_target(task_context(runtime, "backup.target_add"), "loc", str(files))
    first = run_backup(task_context(runtime, "backup.run"), "zb3", "loc", "snapshot")
    image = files / first["path"] / "disks" / "disk0.img"
    assert image.stat().st_size == 64 * MIB and image.stat().st_blocks * 512 < 16 * MIB
    assert hashlib.sha256(image.read_bytes()).hexdigest() == sha(host, device)
    assert (files / first["path"] / "config" / "cidata.iso").is_file()
    assert first["consistency"] == "consistent" and snaps(host, "tank/bhype/vms/zb3") == []
    assert "snapdev" not in run(host, "zfs", "get", "-H", "-s", "local", "snapdev", "tank/bhype/vms/zb3/disk0").stdout

    write(host, device, 1, seek_mib=40)
    second = run_backup(task_context(runtime, "backup.run"), "zb3", "loc", "snapshot")
    assert second["literal_bytes"] < 3 * MIB and second["basis"] == first["path"]
    image = files / second["path"] / "disks" / "disk0.img"
    assert hashlib.sha256(image.read_bytes()).hexdigest() == sha(host, device)
    assert snaps(host, "tank/bhype/vms/zb3") == []


def test_verify_and_restore_onto_directory_storage(world, pools, tmp_path, plugin_manager, register_plugin):
    """``backup.verify`` re-reads a ZFS point on the target (zvol and file digests computed
    there, through temporary clones) and reports a changed snapshot; a restore onto directory
    storage turns the zvol into a bit-identical sparse image file.

    The mismatch is made honestly: a snapshot cannot change, so the target's ``disk0@SNAP`` is
    released, destroyed and taken again under the same name after one MiB of the received zvol
    was overwritten: same name, different GUID and content, as a silently altered copy would be."""
    import hashlib

    from bhype_backup.verify import verify
    from bhype_core.builtins import storage
    from bhype_core.hookspecs import hookimpl
    from bhype_core.plugin_api import TaskFailed, open_datastore

    class Events:
        def __init__(self) -> None:
            self.seen: list = []

        @hookimpl
        def bhype_notify(self, event):
            self.seen.append(event)

    runtime, host = world, pools
    events = Events()
    register_plugin(events, "test-zfs-verify-events")
    device = make_vm(runtime, host, "zb4", size="32M")
    write(host, device, 4, seek_mib=2)
    point = run_backup(task_context(runtime, "backup.run"), "zb4", "zt", "snapshot")
    uuid, snap = get_point(runtime, point["point"]).vm_uuid, point["path"].split("@")[1]
    source_sha = sha(host, device)
    good = verify(task_context(runtime, "backup.verify"), point["point"])
    assert good == {"point": point["point"], "state": "ok", "problems": []}
    assert get_point(runtime, point["point"]).verify_state == "ok"
    # The temporary clones are gone; the chain's properties untouched.
    assert "bhype-read" not in run(host, "zfs", "list", "-H", "-o", "name", "-r", "bpool").stdout
    assert "snapdev" not in run(host, "zfs", "get", "-H", "-s", "local", "snapdev", f"bpool/bk/{uuid}/disk0").stdout

    # Onto directory storage: a worker on this machine (local runner), directory datastore "dir".
    store_root = tmp_path / "dirstore"
    store_root.mkdir()
    local_settings = make_settings(tmp_path / "data", core={"platform": "linux"},
                                   vm={"datastores": {"dir": {"backend": "directory", "path": str(store_root)}},
                                       "default_datastore": "dir"})
    register_plugin(storage, "core_storage")  # the directory backend
    local = build_runtime(local_settings, plugin_manager)
    try:
        result = restore(task_context(local, "backup.restore"), point["point"], datastore="dir", **{"as": "zb4dir"})
        assert result["new_vm"] is True and result["datastore"] == "dir" and "disk0" in result["restored"]
        image = open_datastore(local, "dir").volume_path("zb4dir", "disk0")
        assert image.stat().st_size == 32 * MIB and image.stat().st_blocks * 512 < 12 * MIB  # sparse
        assert hashlib.sha256(image.read_bytes()).hexdigest() == source_sha
        assert (image.parent / "cidata.iso").read_bytes() == b"seed of zb4\n" * 999
        # A second restore under a taken name is refused and leaves the first alone.
        with pytest.raises(Exception, match="exists"):
            restore(task_context(local, "backup.restore"), point["point"], datastore="dir", **{"as": "zb4dir"})
        assert image.is_file()
    finally:
        local.engine.dispose()
    assert "bhype-copy" not in run(host, "zfs", "list", "-H", "-o", "name", "-r", "bpool").stdout

    # Alter the target's copy: same snapshot name, different content.
    target_zvol = f"bpool/bk/{uuid}/disk0"
    run(host, "zfs", "release", "-r", "bhype-backup", f"bpool/bk/{uuid}@{snap}")
    run(host, "udevadm", "settle")
    write(host, f"/dev/zvol/{target_zvol}", 1, seek_mib=3)
    run(host, "zfs", "destroy", f"{target_zvol}@{snap}")
    run(host, "zfs", "snapshot", f"{target_zvol}@{snap}")
    with pytest.raises(TaskFailed, match="disk0"):
        verify(task_context(runtime, "backup.verify"), point["point"])
    assert get_point(runtime, point["point"]).verify_state == "failed"
    [mismatch] = [e for e in events.seen if e.kind == "backup.verify_mismatch"]
    assert mismatch.data["files"] == ["disk0"] and mismatch.data["point"] == point["point"]
