"""The ZFS test host runs real OpenZFS, reached through the SSH runner (issue 7's test bed).

Commands follow zpool-create(8), zfs-create(8), zfs-snapshot(8), zfs-list(8) (``-H``: no
header, tab-separated; ``-p``: exact numbers), zpool-export(8)/zpool-import(8) and
zfs-send(8)/zfs-receive(8).
"""

from __future__ import annotations

import pytest

from bhype_core.testing.zfs_guest import ZfsHost

pytestmark = [pytest.mark.guest, pytest.mark.slow]


def test_disks_have_stable_names(fresh_zfs_host: ZfsHost) -> None:
    listing = fresh_zfs_host.shared_runner.run(["ls", "/dev/disk/by-id"]).stdout.split()

    for serial in fresh_zfs_host.disks:
        assert f"virtio-{serial}" in listing


def test_mirror_pool_datasets_snapshots_export_import(fresh_zfs_host: ZfsHost) -> None:
    host = fresh_zfs_host
    run = host.shared_runner.run
    first, second = (host.disk_path(serial) for serial in host.disks[:2])

    run(["zpool", "create", "tank", "mirror", first, second])
    status = run(["zpool", "status", "tank"]).stdout
    assert "mirror-0" in status and "ONLINE" in status
    assert f"virtio-{host.disks[0]}" in status and f"virtio-{host.disks[1]}" in status

    run(["zfs", "create", "-o", "compression=lz4", "tank/vms"])
    run(["zfs", "snapshot", "tank/vms@first"])
    listing = run(
        ["zfs", "list", "-Hp", "-r", "-t", "all", "-o", "name,type,used,compression", "tank"]
    ).stdout
    rows = [line.split("\t") for line in listing.splitlines()]
    assert [(name, kind) for name, kind, _, _ in rows] == [
        ("tank", "filesystem"),
        ("tank/vms", "filesystem"),
        ("tank/vms@first", "snapshot"),
    ]
    assert all(used.isdigit() for _, _, used, _ in rows)  # -p: exact bytes, no "1.2M"
    assert rows[1][3] == "lz4"

    duplicate = run(["zfs", "create", "tank/vms"], check=False)
    assert duplicate.returncode == 1
    assert "dataset already exists" in duplicate.stderr

    run(["zpool", "export", "tank"])
    assert "tank" not in run(["zpool", "list", "-H", "-o", "name"]).stdout.split()
    assert "pool: tank" in run(["zpool", "import", "-d", "/dev/disk/by-id"]).stdout

    run(["zpool", "import", "-d", "/dev/disk/by-id", "tank"])
    snapshots = run(["zfs", "list", "-H", "-t", "snapshot", "-o", "name", "-r", "tank"]).stdout.split()
    assert snapshots == ["tank/vms@first"]


def test_send_stream_round_trips_through_the_runner(fresh_zfs_host: ZfsHost) -> None:
    run = fresh_zfs_host.shared_runner.run
    run(["zpool", "create", "tank", fresh_zfs_host.disk_path(fresh_zfs_host.disks[2])])
    run(["zfs", "create", "tank/src"])
    run(["dd", "if=/dev/urandom", "of=/tank/src/blob", "bs=64k", "count=4"])
    digest = run(["sha256sum", "/tank/src/blob"]).stdout.split()[0]
    run(["zfs", "snapshot", "tank/src@s1"])

    stream = run(["zfs", "send", "tank/src@s1"]).stdout_bytes
    run(["zfs", "receive", "tank/copy"], input=stream)

    assert run(["sha256sum", "/tank/copy/blob"]).stdout.split()[0] == digest
    assert "tank/copy@s1" in run(["zfs", "list", "-H", "-t", "snapshot", "-o", "name"]).stdout.split()


def test_reset_leaves_blank_disks(zfs_host: ZfsHost) -> None:
    run = zfs_host.shared_runner.run
    zfs_host.reset()
    run(["zpool", "create", "left", zfs_host.disk_path(zfs_host.disks[3])])
    run(["zpool", "export", "left"])  # an exported pool still claims its disk
    assert "pool: left" in run(["zpool", "import", "-d", "/dev/disk/by-id"]).stdout

    zfs_host.reset()

    scan = run(["zpool", "import", "-d", "/dev/disk/by-id"], check=False)
    assert "pool: left" not in scan.stdout + scan.stderr
    assert f"virtio-{zfs_host.disks[3]}-part1" not in run(["ls", "/dev/disk/by-id"]).stdout.split()
