"""The ZFS datastore's capabilities (issue 12) against recorded FreeBSD answers (constructed from
zfs-snapshot(8), zfs-hold(8), zfs-holds(8), zfs-send(8), zfs-list(8), zfs-get(8), find(1),
du(1)): a consistent point is one recursive snapshot plus a hold, released only when no other
tag holds it; the export stream is a ``zfs send``; space and per-disk use come from ``-Hp``."""

from __future__ import annotations

import pytest

from bhype_core.errors import Conflict, NotSupported
from bhype_core.storage.capabilities import ConsistentPoint, StorageCapability
from bhype_zfs.argv import Tools
from bhype_zfs.storage import ZfsDatastoreOptions, ZfsStorage
from bhype_zfs.tool import ZfsHost

from .recorded import RecordedRunner

VM = "tank/bhype/vms/web1"
POINT = "bhype-point-1"
HOLD_LINES = f"{VM}@{POINT}\tbhype-backup\t1738332060\n{VM}/disk0@{POINT}\tbhype-backup\t1738332060\n"


def store(answers: dict, disk_type: str = "zvol") -> tuple[ZfsStorage, RecordedRunner]:
    runner = RecordedRunner(answers)
    options = ZfsDatastoreOptions(name="zfs", disk_type=disk_type, mountpoint="/tank/bhype")
    return ZfsStorage(ZfsHost(runner, Tools(platform="freebsd")), "tank/bhype", options), runner


def test_snapshot_takes_every_disk_at_once_and_holds_it() -> None:
    zfs, runner = store({
        ("zfs", "snapshot", "-r", f"{VM}@{POINT}"): (0, "", ""),
        ("zfs", "hold", "-r", "bhype-backup", f"{VM}@{POINT}"): (0, "", ""),
    })
    point = zfs.snapshot("web1", ["disk0", "disk1"], "bhype-backup", name=POINT)
    assert point == ConsistentPoint("zfs", "web1", POINT, "bhype-backup",
                                    {"disk0": f"{VM}/disk0@{POINT}", "disk1": f"{VM}/disk1@{POINT}"})
    assert runner.calls == [["zfs", "snapshot", "-r", f"{VM}@{POINT}"],
                            ["zfs", "hold", "-r", "bhype-backup", f"{VM}@{POINT}"]]


def test_a_failed_hold_leaves_no_unprotected_snapshot() -> None:
    zfs, runner = store({
        ("zfs", "snapshot", "-r", f"{VM}@{POINT}"): (0, "", ""),
        ("zfs", "hold", "-r", "bhype-backup", f"{VM}@{POINT}"):
            (1, "", f"cannot hold snapshot '{VM}@{POINT}': tag already exists on this dataset\n"),
        ("zfs", "destroy", "-r", f"{VM}@{POINT}"): (0, "", ""),
    })
    with pytest.raises(Conflict, match="tag already exists"):
        zfs.snapshot("web1", ["disk0"], "bhype-backup", name=POINT)
    assert runner.calls[-1] == ["zfs", "destroy", "-r", f"{VM}@{POINT}"]


def test_release_destroys_the_point_only_when_nobody_else_holds_it() -> None:
    point = ConsistentPoint("zfs", "web1", POINT, "bhype-backup", {"disk0": f"{VM}/disk0@{POINT}"})
    release = ("zfs", "release", "-r", "bhype-backup", f"{VM}@{POINT}")
    holds = ("zfs", "holds", "-Hp", "-r", f"{VM}@{POINT}")
    destroy = ("zfs", "destroy", "-r", f"{VM}@{POINT}")
    zfs, runner = store({release: (0, "", ""), holds: (0, "", ""), destroy: (0, "", "")})
    zfs.release(point)
    assert runner.calls[-1] == ["zfs", "destroy", "-r", f"{VM}@{POINT}"]

    still_held = HOLD_LINES.replace("bhype-backup", "bhype-move")
    zfs, runner = store({release: (0, "", ""), holds: (0, still_held, "")})
    zfs.release(point)  # another tag (a move in progress) keeps it: nothing destroyed
    assert [call[1] for call in runner.calls] == ["release", "holds"]


def test_export_stream_is_a_zfs_send_of_the_points_snapshot() -> None:
    zfs, runner = store({})
    point = ConsistentPoint("zfs", "web1", POINT, "bhype-backup")
    assert zfs.export_stream(point, "disk0").producer == ["zfs", "send", "-c", f"{VM}/disk0@{POINT}"]
    assert zfs.export_stream(point).producer == ["zfs", "send", "-c", f"{VM}@{POINT}"]
    assert zfs.export_stream(point).format == "zfs-send" and runner.calls == []  # nothing ran


def test_export_files_of_a_point_lists_its_read_only_snapshot_directory() -> None:
    root = f"/tank/bhype/vms/web1/.zfs/snapshot/{POINT}"
    zfs, _ = store({("find", root, "-type", "f"): (0, f"{root}/disk0.img\n{root}/uefi-vars.fd\n", "")}, "file")
    export = zfs.export_files("web1", ConsistentPoint("zfs", "web1", POINT, "bhype-backup"))
    assert (str(export.root), export.files, export.consistent) == (root, ["disk0.img", "uefi-vars.fd"], True)


def test_export_files_is_not_supported_on_zvol_datastores() -> None:
    zfs, runner = store({})
    assert StorageCapability.EXPORT_FILES not in zfs.capabilities
    assert StorageCapability.SNAPSHOT in zfs.capabilities
    with pytest.raises(NotSupported, match="export-files is not supported by storage backend zfs"):
        zfs.export_files("web1")
    assert runner.calls == []


def test_space_and_volume_stats_from_exact_numbers() -> None:
    zfs, _ = store({
        ("zfs", "list", "-Hp", "-o", "used,avail", "-t", "filesystem,volume", "tank/bhype"):
            (0, "5368709120\t102005473280\n", ""),
        ("zfs", "get", "-Hp", "-o", "name,property,value,source", "volsize,referenced", f"{VM}/disk0"):
            (0, f"{VM}/disk0\tvolsize\t21474836480\tlocal\n{VM}/disk0\treferenced\t1207959552\t-\n", ""),
    })
    space = zfs.space()
    assert (space.used, space.free, space.size) == (5368709120, 102005473280, 5368709120 + 102005473280)
    stats = zfs.volume_stats("web1", "disk0")
    assert (stats.name, stats.size, stats.used) == ("disk0", 21474836480, 1207959552)


def test_file_disk_stats_use_du() -> None:
    path = "/tank/bhype/vms/web1/disk0.img"
    zfs, _ = store({
        ("stat", "-f", "%z", path): (0, "1073741824\n", ""),
        ("du", "-k", "--", path): (0, f"2048\t{path}\n", ""),
    }, "file")
    stats = zfs.volume_stats("web1", "disk0")
    assert (stats.size, stats.used) == (1073741824, 2048 * 1024)
