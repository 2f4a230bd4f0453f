"""backup.run and backup.restore through the task queue on real rsync, with stopped VMs on a
directory datastore (the running-guest tests are in test_backup_guest.py): complete points
only, manifests with per-chunk checksums, incremental points that are complete by themselves
(hard links on POSIX targets), restores as a new VM and onto the same VM checked bit for bit."""

from __future__ import annotations

import json
import os

import pytest

from bhype_backup.manifest import parse_manifest
from bhype_backup.points import list_points
from bhype_core.testing.rsyncd import start_rsyncd

from .world import MiB, write_pattern


def add_local(world, tmp_path, name="usb", **extra):
    (tmp_path / name).mkdir(exist_ok=True)
    world.ok("backup.target_add", {"name": name, "destination": str(tmp_path / name), **extra})
    return tmp_path / name


def test_full_then_incremental_points_and_restores(world, tmp_path):
    vm_dir = world.create_vm("web", disks=["16M", "8M"])
    root = add_local(world, tmp_path)
    first = world.ok("backup.run", {"vm": "web", "target": "usb", "mode": "stop", "job": None})
    assert first["basis"] is None and first["consistency"] == "consistent"
    assert first["literal_bytes"] >= 6 * MiB  # both disks' written data, sparse or not
    point_dir = root / first["path"]
    manifest = parse_manifest((point_dir / "manifest.json").read_bytes())
    disks = {f.volume: f for f in manifest.files if f.role == "disk"}
    assert set(disks) == {"disk0", "disk1"} and disks["disk0"].size == 16 * MiB
    assert len(disks["disk0"].chunks) == 4 and disks["disk0"].mode == "0600"
    assert (point_dir / disks["disk0"].stored).read_bytes() == world.disk("web", 0).read_bytes()
    spec = json.loads((point_dir / "config" / "spec.json").read_text())
    assert spec["name"] == "web" and manifest.vm["uuid"] == spec["uuid"]
    # 1 MiB changed in disk0: the next point sends about that, disk1 is a hard link.
    write_pattern(world.disk("web", 0), 99, offset=8 * MiB, length=MiB)
    second = world.ok("backup.run", {"vm": "web", "target": "usb", "mode": "stop", "job": None})
    assert second["basis"] == first["path"]
    assert MiB <= second["literal_bytes"] < 2 * MiB
    # Size is logical (both disks whole, every time); "new" is what each point added on the
    # target: all of it first, then disk0 (rewritten) but not disk1 (a hard link) and no config
    # file that did not change.
    assert first["size"] == second["size"] > 24 * MiB
    assert first["size"] < first["stored_bytes"] < first["size"] + MiB  # + the manifest
    assert 16 * MiB <= second["stored_bytes"] < 17 * MiB
    shown = {p.id: p for p in list_points(world.runtime, vm="web")}
    assert shown[second["point"]].stored_bytes == second["stored_bytes"]
    second_dir = root / second["path"]
    assert os.stat(second_dir / disks["disk1"].stored).st_ino == os.stat(point_dir / disks["disk1"].stored).st_ino
    assert (second_dir / disks["disk0"].stored).read_bytes() == world.disk("web", 0).read_bytes()
    assert (point_dir / disks["disk0"].stored).read_bytes() != world.disk("web", 0).read_bytes()  # old point intact
    assert [p.id for p in list_points(world.runtime, vm="web")] == [second["point"], first["point"]]
    # Restore the first point as a new VM: new name, UUID and MACs; the old data.
    original = (point_dir / disks["disk0"].stored).read_bytes()
    restored = world.ok("backup.restore", {"point": first["point"], "vm": "web", "as": "web-old", "confirm": False})
    assert restored["new_vm"] and restored["uuid"] != manifest.vm["uuid"]
    assert world.disk("web-old", 0).read_bytes() == original
    from bhype_core.plugin_api import find_vm

    old, new = find_vm(world.runtime, "web"), find_vm(world.runtime, "web-old")
    assert old.spec["nics"][0]["mac"] != new.spec["nics"][0]["mac"]
    # Onto the same VM: refused without confirmation, then disk0 only, then everything.
    refused = world.run("backup.restore", {"point": first["point"], "vm": "web", "confirm": False})
    assert refused.state == "failed" and "confirm" in refused.error["message"]
    world.ok("backup.restore", {"point": first["point"], "vm": "web", "disk": "disk0", "confirm": True})
    assert world.disk("web", 0).read_bytes() == original
    assert not list(vm_dir.glob(".*.restore"))


def test_daemon_target_incremental_and_delete_point(world, tmp_path):
    world.create_vm("db", disks=["12M"])
    with start_rsyncd(tmp_path / "rsyncd", {"vms": tmp_path / "module"}) as daemon:
        world.ok("backup.target_add", {"name": "nas", "destination": daemon.url("vms", "bk"),
                                       "password": daemon.password})
        first = world.ok("backup.run", {"vm": "db", "target": "nas", "mode": "stop", "job": None})
        write_pattern(world.disk("db"), 7, offset=4 * MiB, length=MiB // 4)
        second = world.ok("backup.run", {"vm": "db", "target": "nas", "mode": "crash", "job": None})
        assert second["literal_bytes"] < MiB and second["consistency"] == "consistent"  # stopped: nothing to crash
        stored = tmp_path / "module" / "bk" / second["path"] / "disks" / "disk0.img"
        assert stored.read_bytes() == world.disk("db").read_bytes()
        world.ok("backup.delete_point", {"point": first["point"]})
        assert not (tmp_path / "module" / "bk" / first["path"]).exists()
        assert stored.read_bytes() == world.disk("db").read_bytes()  # the hard-linked data stays in the newer one
        assert [p.id for p in list_points(world.runtime, vm="db")] == [second["point"]]
        restored = world.ok("backup.restore", {"point": second["point"], "vm": "db", "as": "db2"})
        assert world.disk("db2").read_bytes() == world.disk("db").read_bytes()
        assert restored["restored"] == ["disk0", "OVMF_VARS.fd"]  # the UEFI variables too
        assert (world.root / "ds" / "vms" / "db2" / "OVMF_VARS.fd").read_bytes() == (
            world.root / "ds" / "vms" / "db" / "OVMF_VARS.fd").read_bytes()


def test_snapshot_mode_on_directory_storage_needs_the_drivers_consistent_point(world, tmp_path):
    # QEMU has one (a running guest: tests/backup/test_backup_qmp_point.py); a stopped VM is
    # copied as it is.
    world.create_vm("web")
    add_local(world, tmp_path)
    done = world.ok("backup.run", {"vm": "web", "target": "usb", "mode": "snapshot", "job": None})
    assert done["consistency"] == "consistent" and not done["warnings"]
    # bhyve has none: refused at plan time, before anything happens.
    from bhype_backup.sources import check_mode
    from bhype_core.drivers.bhyve import BhyveDriver
    from bhype_core.plugin_api import ValidationErrors, open_datastore

    store = open_datastore(world.runtime, "default")
    with pytest.raises(ValidationErrors, match=r"snapshot mode needs a datastore with snapshot.*driver bhyve has not"):
        check_mode(store, "snapshot", BhyveDriver.__new__(BhyveDriver))


def test_a_vm_without_disks_says_its_point_is_only_configuration(world, tmp_path):
    world.ok("vm.create", {"name": "bare", "overrides": {"disks": [], "nics": [], "memory": "64M"}})
    add_local(world, tmp_path)
    done = world.ok("backup.run", {"vm": "bare", "target": "usb", "mode": "stop", "job": None})
    assert done["size"] < 2 * MiB and done["warnings"] == ["bare has no disks: the point holds only its configuration"]
    assert list_points(world.runtime, vm="bare")[0].note == done["warnings"][0]


def test_unreachable_target_and_wrong_password_fail_clearly_and_list_nothing(world, tmp_path):
    world.create_vm("web", disks=["8M"])
    with start_rsyncd(tmp_path / "rsyncd", {"vms": tmp_path / "module"}) as daemon:
        world.ok("backup.target_add", {"name": "nas", "destination": daemon.url("vms"), "password": daemon.password})
        (world.runtime.settings.core.data_dir / "backup" / "secrets" / "nas" / "password").write_text("wrong")
        failed = world.run("backup.run", {"vm": "web", "target": "nas", "mode": "stop", "job": None})
        assert failed.state == "failed" and "auth failed" in failed.error["message"]
        assert "wrong password or module" in failed.error["message"]
        daemon.stop()
        failed = world.run("backup.run", {"vm": "web", "target": "nas", "mode": "stop", "job": None})
        assert failed.state == "failed" and "socket I/O error" in failed.error["message"]
    assert list_points(world.runtime) == []


def test_rsync_killed_mid_way_then_the_next_run_resumes(world, tmp_path):
    import threading
    import time

    world.create_vm("big", disks=["24M"])
    write_pattern(world.disk("big"), 5, length=20 * MiB)
    module = tmp_path / "module"
    with start_rsyncd(tmp_path / "rsyncd", {"vms": module}) as daemon:
        world.ok("backup.target_add", {"name": "nas", "destination": daemon.url("vms"), "password": daemon.password})
        world.runtime.settings.section("backup").bwlimit = 2048  # KiB/s: about 10 s for the disk

        def kill_when_half_way() -> None:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                sizes = [p.stat().st_size for p in module.rglob("*.img") if p.is_file()]
                if sizes and max(sizes) > 6 * MiB:
                    break
                time.sleep(0.05)
            daemon.stop()  # the daemon and its rsync receiver are killed mid-transfer

        killer = threading.Thread(target=kill_when_half_way)
        killer.start()
        failed = world.run("backup.run", {"vm": "big", "target": "nas", "mode": "stop", "job": None})
        killer.join()
        assert failed.state == "failed" and "rsync exited" in failed.error["message"]
        assert list_points(world.runtime) == []
    world.runtime.settings.section("backup").bwlimit = 0
    with start_rsyncd(tmp_path / "rsyncd2", {"vms": module}, password=daemon.password) as again:
        from sqlmodel import select

        from bhype_backup.models import BackupTarget
        from bhype_core.plugin_api import session

        with session(world.runtime) as db:
            row = db.exec(select(BackupTarget)).one()
            row.destination = again.url("vms")
            db.add(row)
        resumed = world.ok("backup.run", {"vm": "big", "target": "nas", "mode": "stop", "job": None})
    assert resumed["literal_bytes"] < 18 * MiB  # what reached the target before the kill was reused
    stored = module / resumed["path"] / "disks" / "disk0.img"
    assert stored.read_bytes() == world.disk("big").read_bytes()
    assert len(list(module.glob("*/*"))) == 1  # the interrupted run's directory is gone
    assert [p.id for p in list_points(world.runtime)] == [resumed["point"]]


def test_cancel_leaves_no_partial_point(world, tmp_path):
    import threading
    import time

    from bhype_core.api.principal import Principal
    from bhype_core.tasks import service

    world.create_vm("big", disks=["16M"])
    write_pattern(world.disk("big"), 5, length=12 * MiB)
    root = add_local(world, tmp_path)
    world.runtime.settings.section("backup").bwlimit = 1024
    task = service.submit(world.runtime, Principal(world.admin.name, "admin"), "backup.run",
                          {"vm": "big", "target": "usb", "mode": "stop", "job": None})

    def cancel_when_started() -> None:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not list(root.rglob("*.img")):
            time.sleep(0.05)
        service.cancel(world.runtime, Principal(world.admin.name, "admin"), task.id)

    canceller = threading.Thread(target=cancel_when_started)
    canceller.start()
    from bhype_core.testing.tasks import run_queued

    run_queued(world.runtime)
    canceller.join()
    from bhype_core.tasks import store

    assert store.get_task(world.runtime.engine, task.id).state == "cancelled"
    assert list_points(world.runtime) == [] and list(root.rglob("*.img")) == []


def test_target_full_fails_clearly(world, tmp_path):
    import subprocess

    world.create_vm("big", disks=["24M"])
    write_pattern(world.disk("big"), 5, length=20 * MiB)
    small = tmp_path / "small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(small)], check=True)
    try:
        world.ok("backup.target_add", {"name": "tiny", "destination": str(small)})
        failed = world.run("backup.run", {"vm": "big", "target": "tiny", "mode": "stop", "job": None})
        assert failed.state == "failed"
        assert "target tiny is full" in failed.error["message"]
        assert "No space left on device" in failed.error["message"]
        assert list_points(world.runtime) == []
    finally:
        subprocess.run(["umount", str(small)], check=False)


def test_vm_destroyed_while_the_backup_was_queued(world, tmp_path):
    from bhype_core.api.principal import Principal
    from bhype_core.tasks import service

    world.create_vm("gone")
    add_local(world, tmp_path)
    admin = Principal(world.admin.name, "admin")
    destroy = service.submit(world.runtime, admin, "vm.destroy", {"name": "gone"})
    backup = service.submit(world.runtime, admin, "backup.run", {"vm": "gone", "target": "usb", "mode": "stop",
                                                                 "job": None})
    from bhype_core.tasks import store
    from bhype_core.testing.tasks import run_queued

    run_queued(world.runtime)
    assert store.get_task(world.runtime.engine, destroy.id).state == "succeeded"
    failed = store.get_task(world.runtime.engine, backup.id)
    assert failed.state == "failed" and "no VM named 'gone'" in failed.error["message"]
    assert list_points(world.runtime) == []


def test_a_change_that_keeps_size_and_mtime_is_still_backed_up(world, tmp_path):
    world.create_vm("sly", disks=["8M"])
    root = add_local(world, tmp_path)
    first = world.ok("backup.run", {"vm": "sly", "target": "usb", "mode": "stop", "job": None})
    disk = world.disk("sly")
    before = os.stat(disk)
    write_pattern(disk, 42, offset=5 * MiB, length=4096)
    os.utime(disk, ns=(before.st_atime_ns, before.st_mtime_ns))  # rsync's quick check would skip it
    second = world.ok("backup.run", {"vm": "sly", "target": "usb", "mode": "stop", "job": None})
    assert (root / second["path"] / "disks" / "disk0.img").read_bytes() == disk.read_bytes()
    assert (root / first["path"] / "disks" / "disk0.img").read_bytes() != disk.read_bytes()


def test_ssh_target_backup_restore_and_a_changed_host_key(world, tmp_path):
    from bhype_core.testing.sshd import start_sshd

    world.create_vm("ssh1", disks=["8M"])
    remote = tmp_path / "remote"
    remote.mkdir()
    with start_sshd(tmp_path / "sshd") as server:
        destination = f"ssh://{server.user}@{server.host}:{server.port}{remote}"
        world.ok("backup.target_add", {"name": "far", "destination": destination, "key": server.identity.read_text()})
        first = world.ok("backup.run", {"vm": "ssh1", "target": "far", "mode": "stop", "job": None})
        write_pattern(world.disk("ssh1"), 8, offset=MiB, length=MiB // 4)
        second = world.ok("backup.run", {"vm": "ssh1", "target": "far", "mode": "stop", "job": None})
        assert second["literal_bytes"] < MiB
        assert os.stat(remote / second["path"] / "config" / "spec.json").st_nlink == 1  # written anew
        assert (remote / second["path"] / "disks" / "disk0.img").read_bytes() == world.disk("ssh1").read_bytes()
        world.ok("backup.restore", {"point": first["point"], "vm": "ssh1", "as": "ssh2"})
        assert world.disk("ssh2").read_bytes() == (remote / first["path"] / "disks" / "disk0.img").read_bytes()
        port = server.port
    with start_sshd(tmp_path / "sshd2") as impostor:  # another host key where the target points
        from sqlmodel import select

        from bhype_backup.models import BackupTarget
        from bhype_core.plugin_api import session

        with session(world.runtime) as db:
            row = db.exec(select(BackupTarget)).one()
            row.destination = row.destination.replace(f":{port}/", f":{impostor.port}/")
            db.add(row)
        known = world.runtime.settings.core.data_dir / "backup" / "secrets" / "far" / "known_hosts"
        known.write_text(known.read_text().replace(f"]:{port} ", f"]:{impostor.port} "))
        failed = world.run("backup.run", {"vm": "ssh1", "target": "far", "mode": "stop", "job": None})
        assert failed.state == "failed" and "Host key verification failed" in failed.error["message"]
    assert [p.id for p in list_points(world.runtime, vm="ssh1")] == [second["point"], first["point"]]
