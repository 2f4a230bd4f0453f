"""VM snapshots on real OpenZFS: atomic recursive snapshots, listing with sizes, rollback (with and
without newer snapshots), holds, destroy refusals, and scheduled snapshots pruned on the pool.

Commands: zfs-snapshot(8) ``-r``, zfs-list(8) ``-t snapshot``, zfs-rollback(8) ``[-r]``,
zfs-hold(8)/zfs-release(8)/zfs-holds(8), zfs-destroy(8) ``ds@a,b``.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bhype_core.errors import Conflict, NotFound, ValidationErrors
from bhype_core.vm.services import open_datastore
from bhype_zfs import schedules, snapshots
from bhype_zfs.models import ZfsScheduleBase
from bhype_zfs.retention import snapshot_name
from bhype_zfs.tasks import destroy_snapshot, hold, release, rollback, snapshot
from bhype_zfs.vms import Target, require_stopped

from .helpers import task_context

pytestmark = [pytest.mark.guest, pytest.mark.slow]
MIB = 2**20


def make_vm(runtime, name: str, disks: int = 2):
    """A VM dataset with ``disks`` 8 MiB zvols (the storage layer, no VM record)."""
    store = open_datastore(runtime, "zfs")
    store.create_vm_dir(name)
    for index in range(disks):
        store.create_volume(name, f"disk{index}", 8 * MIB)
    return store


def write(host, device: str, text: str) -> None:
    host.shared_runner.run(["dd", "of=" + device, "bs=512", "count=1", "conv=sync,fsync"], input=text.encode())


def read(host, device: str, size: int = 16) -> bytes:
    return host.shared_runner.run(["dd", "if=" + device, "bs=512", "count=1"]).stdout_bytes[:size]


def test_snapshot_list_rollback_and_newer_snapshots(tank, guest_runtime):
    runtime = guest_runtime()
    make_vm(runtime, "snap1")
    ds = "tank/bhype/vms/snap1"
    dev = "/dev/zvol/" + ds
    write(tank, f"{dev}/disk0", "first-disk0")
    write(tank, f"{dev}/disk1", "first-disk1")
    first = snapshot(task_context(runtime), "first", dataset=ds)
    assert first["datasets"] == [ds, f"{ds}/disk0", f"{ds}/disk1"]  # one atomic snapshot of every disk
    write(tank, f"{dev}/disk0", "second-disk0")
    write(tank, f"{dev}/disk1", "second-disk1")
    snapshot(task_context(runtime), "second", dataset=ds)
    write(tank, f"{dev}/disk0", "third-disk0")

    groups = snapshots.list_snapshots(snapshots_host(runtime), ds)
    assert [g.name for g in groups] == ["first", "second"]
    assert all(g.referenced > 0 for g in groups) and groups[0].used >= 0

    with pytest.raises(Conflict, match=r"newer snapshots exist \(second\)"):
        rollback(task_context(runtime), "first", dataset=ds)
    assert read(tank, f"{dev}/disk0").startswith(b"third-disk0")  # untouched

    result = rollback(task_context(runtime), "second", dataset=ds)
    assert result["destroyed"] == [] and read(tank, f"{dev}/disk0").startswith(b"second-disk0")
    result = rollback(task_context(runtime), "first", dataset=ds, destroy_newer=True)
    assert result["destroyed"] == ["second"]
    assert read(tank, f"{dev}/disk0").startswith(b"first-disk0")
    assert read(tank, f"{dev}/disk1").startswith(b"first-disk1")
    assert [g.name for g in snapshots.list_snapshots(snapshots_host(runtime), ds)] == ["first"]
    with pytest.raises(NotFound):
        rollback(task_context(runtime), "nosuch", dataset=ds)


def snapshots_host(runtime):
    from bhype_zfs.tool import zfs_host

    return zfs_host(runtime)


def test_rollback_refuses_a_disk_added_after_the_snapshot(tank, guest_runtime):
    runtime = guest_runtime()
    store = make_vm(runtime, "snap2", disks=1)
    snapshot(task_context(runtime), "before", dataset="tank/bhype/vms/snap2")
    store.create_volume("snap2", "disk1", 8 * MIB)
    with pytest.raises(Conflict, match="disk1 did not exist when it was taken"):
        rollback(task_context(runtime), "before", dataset="tank/bhype/vms/snap2")


def test_a_running_vm_is_never_rolled_back():
    with pytest.raises(Conflict, match="web1 is running"):
        require_stopped(None, Target("tank/bhype/vms/web1", "web1"), running=lambda name: True)
    require_stopped(None, Target("tank/bhype/vms/web1", "web1"), running=lambda name: False)
    require_stopped(None, Target("tank/bhype/vms/x"))  # no VM behind a bare dataset


def test_holds_protect_snapshots_until_released(tank, guest_runtime):
    runtime = guest_runtime()
    make_vm(runtime, "hold1")
    ds = "tank/bhype/vms/hold1"
    snapshot(task_context(runtime), "base", dataset=ds)
    snapshot(task_context(runtime), "keep", dataset=ds)
    held = hold(task_context(runtime), "keep", "bhype-backup", dataset=ds)["holds"]
    assert {h["snapshot"] for h in held} == {f"{ds}@keep", f"{ds}/disk0@keep", f"{ds}/disk1@keep"}
    with pytest.raises(Conflict, match="are held"):
        destroy_snapshot(task_context(runtime), "keep", dataset=ds)
    # Rolling back past a held snapshot would destroy it: refused before any disk changes.
    with pytest.raises(Conflict, match=r"are held.*needed to roll"):
        rollback(task_context(runtime), "base", dataset=ds, destroy_newer=True)
    assert [g.name for g in snapshots.list_snapshots(snapshots_host(runtime), ds)] == ["base", "keep"]
    store = open_datastore(runtime, "zfs")
    with pytest.raises(Conflict, match="release the hold first"):
        store.remove_vm_dir("hold1")
    assert tank.shared_runner.run(["zfs", "list", f"{ds}/disk0"], check=False).returncode == 0  # nothing destroyed
    with pytest.raises(NotFound, match="no hold 'other'"):
        release(task_context(runtime), "keep", "other", dataset=ds)
    assert release(task_context(runtime), "keep", "bhype-backup", dataset=ds)["holds"] == []
    assert destroy_snapshot(task_context(runtime), "keep", dataset=ds)["destroyed"] == [
        f"{ds}@keep", f"{ds}/disk0@keep", f"{ds}/disk1@keep"]
    store.remove_vm_dir("hold1")


def test_snapshot_names_and_targets_are_checked(tank, guest_runtime):
    runtime = guest_runtime()
    with pytest.raises(ValidationErrors, match="name"):
        snapshot(task_context(runtime), "bad name", dataset="tank/bhype/vms")
    with pytest.raises(ValidationErrors, match="outside bHype's root"):
        snapshot(task_context(runtime), "x", dataset="tank/other")
    with pytest.raises(ValidationErrors, match="exactly one"):
        snapshot(task_context(runtime), "x")


def test_scheduled_snapshots_are_taken_once_per_slot_and_pruned_on_the_pool(tank, guest_runtime):
    runtime = guest_runtime()
    make_vm(runtime, "sched1", disks=1)
    ds = "tank/bhype/vms/sched1"
    schedules.create_schedule(runtime, ZfsScheduleBase(name="s1", dataset=ds, hourly=3, daily=1))
    start = datetime(2025, 3, 1, 10, 0, tzinfo=UTC)
    run = tank.shared_runner.run

    def names() -> list[str]:
        return run(["zfs", "list", "-H", "-t", "snapshot", "-o", "name", "-d", "1", ds]).stdout.split()

    first = schedules.run_due(runtime, now=start)["s1"]
    assert sorted(first["taken"]) == ["daily", "hourly"] and first["pruned"] == []
    assert schedules.run_due(runtime, now=start + timedelta(minutes=30))["s1"]["taken"] == {}
    # The worker was down for five hours: one hourly snapshot catches up, not five.
    later = schedules.run_due(runtime, now=start + timedelta(hours=5, minutes=3))["s1"]
    assert list(later["taken"]) == ["hourly"]
    for hour in (6, 7):
        schedules.run_due(runtime, now=start + timedelta(hours=hour))
    hourly = [n for n in names() if n.endswith("_hourly")]
    assert hourly == [f"{ds}@{snapshot_name('hourly', t)}" for t in (
        start + timedelta(hours=5, minutes=3), start + timedelta(hours=6), start + timedelta(hours=7))]
    # Every member of a recursive snapshot carries the schedule property, disks included.
    assert run(["zfs", "get", "-H", "-o", "value", "org.bhype:schedule", f"{ds}/disk0@{hourly[0].split('@')[1]}"]
               ).stdout.strip() == "s1"

    # A held snapshot and the newest backup base survive pruning; foreign snapshots are untouched.
    run(["zfs", "hold", "-r", "backup", hourly[0]])
    run(["zfs", "set", "org.bhype:backup-base=job1", hourly[1]])
    run(["zfs", "snapshot", "-r", f"{ds}@autosnap_2020-01-01_00:00:00_hourly"])
    for hour in (8, 9, 10, 11):
        schedules.run_due(runtime, now=start + timedelta(hours=hour))
    hourly = [n.split("@")[1] for n in names() if n.endswith("_hourly") and "@bhype_" in n]
    # At 21:00 the 3 newest stay (21, 20, 19); 18:00 is not yet older than 3 hours; 17:00 goes;
    # 15:03 is held and 16:00 is job1's newest backup base.
    kept = [timedelta(hours=5, minutes=3), *(timedelta(hours=h) for h in (6, 8, 9, 10, 11))]
    assert hourly == [snapshot_name("hourly", start + delta) for delta in kept]
    assert f"{ds}@autosnap_2020-01-01_00:00:00_hourly" in names()

    # Restart: a new process with the same database neither repeats nor skips a slot.
    again = guest_runtime()
    assert schedules.run_due(again, now=start + timedelta(hours=11, minutes=40))["s1"]["taken"] == {}
    assert list(schedules.run_due(again, now=start + timedelta(hours=12))["s1"]["taken"]) == ["hourly"]


def test_a_failing_schedule_is_recorded_and_the_others_still_run(tank, guest_runtime):
    runtime = guest_runtime()
    make_vm(runtime, "sched2", disks=1)
    schedules.create_schedule(runtime, ZfsScheduleBase(name="gone", dataset="tank/bhype/vms/nosuch", hourly=1))
    schedules.create_schedule(runtime, ZfsScheduleBase(name="fine", dataset="tank/bhype/vms/sched2", hourly=1))
    with pytest.raises(Conflict):
        schedules.create_schedule(runtime, ZfsScheduleBase(name="fine", dataset="tank/bhype/vms/sched2", hourly=1))
    with pytest.raises(ValidationErrors, match="keeps no snapshots"):
        schedules.create_schedule(runtime, ZfsScheduleBase(name="empty", dataset="tank/bhype/vms/sched2"))
    report = schedules.run_due(runtime, now=datetime(2025, 3, 1, tzinfo=UTC))
    assert "does not exist" in report["gone"]["error"]
    assert list(report["fine"]["taken"]) == ["hourly"]
