"""Parsers against recorded output: fixtures/linux (captured from the ZFS test guest, OpenZFS 2.3)
and fixtures/freebsd (constructed from the documented formats; see fixtures/README.md)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from bhype_zfs.disk_parse import (
    linux_partitions,
    parse_gpart_show,
    parse_mount_list,
    parse_proc_partitions,
    parse_swap_list,
    parse_udev_properties,
    parse_zdb_label,
)
from bhype_zfs.parse import (
    ParseError,
    parse_destroy_dry_run,
    parse_holds,
    parse_send_estimate,
    parse_send_progress,
    parse_snapshots,
    parse_zfs_get,
    parse_zpool_list,
    parse_zpool_status,
)

FIXTURES = Path(__file__).parent / "fixtures"


def linux(name: str) -> str:
    return (FIXTURES / "linux" / name).read_text()


def freebsd(name: str) -> str:
    return (FIXTURES / "freebsd" / name).read_text()


def test_zpool_list_both_platforms():
    (tank,) = parse_zpool_list(linux("zpool_list.txt"))
    assert tank.name == "tank" and tank.health == "ONLINE" and tank.size == tank.allocated + tank.free
    tank, zroot = parse_zpool_list(freebsd("zpool_list.txt"))
    assert (tank.capacity, tank.fragmentation, tank.dedup) == (31, 12, 1.0)
    assert (zroot.health, zroot.fragmentation, zroot.capacity) == ("DEGRADED", None, 90)
    with pytest.raises(ParseError, match="8 TAB-separated fields"):
        parse_zpool_list("tank\t1\t2\n")


def test_zpool_status_mirror_and_degraded_from_the_guest():
    healthy = parse_zpool_status(linux("zpool_status_mirror.txt"))
    assert (healthy.pool, healthy.state, healthy.errors) == ("tank", "ONLINE", "No known data errors")
    assert [(d.name, d.state) for d in healthy.devices] == [
        ("/dev/disk/by-id/virtio-bhype-disk0-part1", "ONLINE"),
        ("/dev/disk/by-id/virtio-bhype-disk1-part1", "ONLINE"),
    ]
    assert [(v.name, v.depth) for v in healthy.vdevs][:2] == [("tank", 0), ("mirror-0", 1)]
    degraded = parse_zpool_status(linux("zpool_status_degraded.txt"))
    assert degraded.state == "DEGRADED"
    assert degraded.status.startswith("One or more devices has been taken offline")
    assert degraded.status.endswith("degraded state.")
    assert "zpool replace" in degraded.action
    assert [d.state for d in degraded.devices] == ["ONLINE", "OFFLINE"]


def test_zpool_status_raidz_with_unavailable_disk_logs_and_spares_freebsd():
    status = parse_zpool_status(freebsd("zpool_status_raidz1.txt"))
    assert status.state == "DEGRADED" and "could not be opened" in status.status
    devices = {d.name: d for d in status.devices}
    assert devices["/dev/gpt/tank-1"].checksum == 2
    assert devices["1294512735528130291"].state == "UNAVAIL"
    assert devices["1294512735528130291"].note == "was /dev/gpt/tank-2"
    assert devices["/dev/gpt/tank-log0"].state == "ONLINE"
    assert devices["/dev/gpt/tank-spare0"].state == "AVAIL"
    assert "raidz1-0" not in devices and "logs" not in devices


def test_zpool_status_without_state_is_refused():
    with pytest.raises(ParseError, match="state"):
        parse_zpool_status("no pools available\n")


def test_snapshots_from_the_guest_keep_order_holds_and_times():
    rows = parse_snapshots(linux("zfs_list_snapshots.txt"))
    assert [r.full_name for r in rows] == [
        "tank/bhype/vms/web1@bhype_20250131T140000Z_hourly",
        "tank/bhype/vms/web1/disk0@bhype_20250131T140000Z_hourly",
        "tank/bhype/vms/web1@manual-1",
        "tank/bhype/vms/web1/disk0@manual-1",
    ]
    assert [r.holds for r in rows] == [0, 0, 0, 1]
    assert rows[0].txg < rows[2].txg and rows[0].txg == rows[1].txg
    assert rows[0].created.tzinfo is UTC and rows[0].referenced > 0
    with pytest.raises(ParseError, match="not dataset@snapshot"):
        parse_snapshots("tank/a\t0\t0\t1\t0\t1\n")


def test_zfs_get_keeps_sources_and_drops_unset():
    values = parse_zfs_get(linux("zfs_get.txt"))
    assert values["tank/bhype/vms/web1/disk0"]["volsize"].value == "67108864"
    assert values["tank/bhype/vms/web1/disk0"]["volmode"].local
    mountpoint = values["tank/bhype/vms/web1"]["mountpoint"]
    assert mountpoint.value.startswith("/") and mountpoint.source == "inherited from tank" and not mountpoint.local
    assert "volsize" not in values["tank/bhype/vms/web1"]  # "-" with source "-": not set


def test_holds_both_platforms():
    (hold,) = parse_holds(linux("zfs_holds.txt"))
    assert (hold.snapshot, hold.tag) == ("tank/bhype/vms/web1/disk0@manual-1", "keep")
    holds = parse_holds(freebsd("zfs_holds.txt"))
    assert [h.tag for h in holds] == ["bhype-backup", "bhype-backup"]
    assert holds[0].created == datetime(2025, 1, 31, 14, 1, tzinfo=UTC)


def test_send_estimate_and_destroy_dry_run():
    assert parse_send_estimate(linux("zfs_send_estimate.txt")) > 0
    assert parse_send_estimate("incremental\t@s1\ttank/a@s3\t52428800\nsize\t52428800\n") == 52428800
    with pytest.raises(ParseError):
        parse_send_estimate("total estimated size is 50.0M\n")
    dry_run = "destroy\ttank/a@s1\ndestroy\ttank/a@s2\nreclaim\t4096\n"
    assert parse_destroy_dry_run(dry_run) == ["tank/a@s1", "tank/a@s2"]


def test_send_progress_lines_from_a_real_send():
    lines = linux("zfs_send_progress.txt").splitlines()
    assert parse_send_estimate("\n".join(lines)) == 170084968  # -v -P also prints the total first
    assert [parse_send_progress(line) for line in lines] == [
        None, None, 5627488, 12556328, 18483408, 161701696, 167862520]
    assert parse_send_progress("07:16:30\t5.4M\ttank/vol@s1") is None  # without -P: not a number
    assert parse_send_progress("") is None


def test_zdb_labels():
    active = parse_zdb_label(linux("zdb_label_active.txt"))
    assert (active.pool, active.state, active.hostname) == ("tank", "active", "zfs-host")
    assert parse_zdb_label(linux("zdb_label_none.txt")) is None
    exported = parse_zdb_label(freebsd("zdb_label_exported.txt"))
    assert (exported.pool, exported.state, exported.pool_guid) == ("oldpool", "exported", "7418262451924717352")


def test_linux_block_devices():
    gpt = parse_udev_properties(linux("udev_disk_gpt.txt"))
    assert gpt["ID_PART_TABLE_TYPE"] == "gpt" and gpt["DEVTYPE"] == "disk"
    blank = parse_udev_properties(linux("udev_disk_blank.txt"))
    assert "ID_PART_TABLE_TYPE" not in blank and "ID_FS_TYPE" not in blank
    names = parse_proc_partitions(linux("proc_partitions.txt"))
    assert linux_partitions("vda", names) == ["vda1", "vda9"]
    assert linux_partitions("vdc", names) == []
    assert linux_partitions("nvme0n1", ["nvme0n1", "nvme0n1p1", "nvme0n10"]) == ["nvme0n1p1"]


def test_mounts_and_swap_both_platforms():
    mounts = dict(parse_mount_list(linux("proc_mounts.txt")))
    assert mounts["tank"] == "/bhpool"
    assert parse_mount_list("/dev/sdb1 /mnt/my\\040disk ext4 rw 0 0\n") == [("/dev/sdb1", "/mnt/my disk")]
    assert ("/dev/ada3p1", "/data") in parse_mount_list(freebsd("mount_p.txt"))
    assert parse_swap_list(linux("proc_swaps.txt")) == []
    assert parse_swap_list(freebsd("swapctl_l.txt")) == ["/dev/ada0p3"]
    assert parse_swap_list("Filename Type Size Used Priority\n/dev/vdb2 partition 1048572 0 -2\n") == ["/dev/vdb2"]


def test_gpart_show():
    table = parse_gpart_show(freebsd("gpart_show_ada0.txt"))
    assert table.scheme == "GPT"
    assert table.partitions == [("ada0p1", "freebsd-boot"), ("ada0p3", "freebsd-swap"), ("ada0p4", "freebsd-zfs")]
    assert parse_gpart_show("") is None
