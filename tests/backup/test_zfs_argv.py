"""ZFS target argv builders and parsers (bhype_backup.zfs_argv) on samples in the documented
formats (zfs-list(8) ``-H -p``: tab-separated; zfs-holds(8) ``-H``: NAME TAG TIMESTAMP)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bhype_backup import zfs_argv
from bhype_core.plugin_api import ValidationErrors

FIXTURES = Path(__file__).parent / "fixtures"


def sample(name: str) -> str:
    return (FIXTURES / name).read_text()


def test_builders_follow_the_man_pages():
    assert zfs_argv.list_snapshots("tank/vms/web1") == [
        "zfs", "list", "-H", "-p", "-o", "name,guid", "-t", "snapshot", "-d", "1", "-s", "createtxg", "tank/vms/web1"]
    assert zfs_argv.hold("bpool/bk/u@s") == ["zfs", "hold", "-r", "bhype-backup", "bpool/bk/u@s"]
    assert zfs_argv.release("bpool/bk/u@s", recursive=False) == ["zfs", "release", "bhype-backup", "bpool/bk/u@s"]
    assert zfs_argv.receive("bpool/bk/u") == ["zfs", "receive", "-u", "bpool/bk/u"]
    assert zfs_argv.receive("tank/vms/n/disk0", properties={"volmode": "dev"}) == [
        "zfs", "receive", "-u", "-o", "volmode=dev", "tank/vms/n/disk0"]
    assert zfs_argv.receive("tank/vms/n", mount=True) == ["zfs", "receive", "tank/vms/n"]
    assert zfs_argv.get_values(["mounted", "mountpoint"], "bpool/bk") == [
        "zfs", "get", "-H", "-p", "-o", "value", "mounted,mountpoint", "bpool/bk"]
    assert zfs_argv.destroy_snapshot("a/b@c") == ["zfs", "destroy", "-r", "a/b@c"]


@pytest.mark.parametrize("bad", ["-R", "tank/a b", "", "tank//x", "tank/x@y"])
def test_builders_refuse_what_is_not_a_dataset(bad):
    with pytest.raises(ValidationErrors):
        zfs_argv.destroy_dataset(bad)


@pytest.mark.parametrize("bad", ["tank/x", "tank/x@", "-r@x", "tank/x@-F"])
def test_snapshot_names_are_checked(bad):
    with pytest.raises(ValidationErrors):
        zfs_argv.hold(bad)


def test_snapshots_parse_in_order_and_the_newest_common_is_found_by_guid():
    source = zfs_argv.parse_snapshots(sample("zfs_list_snapshots_guid.txt"))
    assert [name for name, _ in source] == ["zfs-auto-2026-12-07", "bhype-backup-nas.20261207T204512-3",
                                            "bhype-backup-nas.20261207T210000-4"]
    target = zfs_argv.parse_snapshots(sample("zfs_list_snapshots_guid_target.txt"))
    assert zfs_argv.newest_common(source, target) == "bhype-backup-nas.20261207T204512-3"
    # The same name with another GUID is another snapshot: no common base, a full send.
    renamed = [(name, "1") for name, _ in target]
    assert zfs_argv.newest_common(source, renamed) is None
    assert zfs_argv.newest_common(source, []) is None
    with pytest.raises(ValueError):
        zfs_argv.parse_snapshots("tank/x@s not-a-guid\n")


def test_tree_and_holds_parse():
    assert zfs_argv.parse_tree(sample("zfs_list_tree.txt")) == [
        ("tank/bhype/vms/web1", "filesystem"), ("tank/bhype/vms/web1/disk0", "volume"),
        ("tank/bhype/vms/web1/disk1", "volume")]
    assert zfs_argv.parse_holds(sample("zfs_holds.txt")) == [
        ("tank/bhype/vms/web1@bhype-backup-nas.20261207T204512-3", "bhype-backup"),
        ("tank/bhype/vms/web1/disk0@bhype-backup-nas.20261207T204512-3", "bhype-backup")]
    with pytest.raises(ValueError):
        zfs_argv.parse_tree("tank/x\tsnapshot\n")


def test_clone_and_digest_argv_follow_the_platform():
    """zfs-clone(8) for reading a point back; sha256(1) ``-q`` on FreeBSD, sha256sum(1) elsewhere."""
    assert zfs_argv.clone("bpool/bk/u/disk0@s", "bpool/bhype-read-1a2b3c4d", {"volmode": "dev"}) == [
        "zfs", "clone", "-o", "volmode=dev", "bpool/bk/u/disk0@s", "bpool/bhype-read-1a2b3c4d"]
    with pytest.raises(ValidationErrors):
        zfs_argv.clone("bpool/bk/u", "bpool/x", {})  # no snapshot
    assert zfs_argv.sha256_argv("FreeBSD\n", "/dev/zvol/b/c") == ["sha256", "-q", "/dev/zvol/b/c"]
    assert zfs_argv.sha256_argv("Linux", "/dev/zvol/b/c") == ["sha256sum", "--", "/dev/zvol/b/c"]
    with pytest.raises(ValidationErrors):
        zfs_argv.sha256_argv("Linux", "-r")
    expected = sample("sha256_q_freebsd.txt").strip()
    assert zfs_argv.parse_sha256(sample("sha256sum_linux.txt")) == expected
    assert zfs_argv.parse_sha256(sample("sha256_q_freebsd.txt")) == expected
    with pytest.raises(ValueError):
        zfs_argv.parse_sha256("sha256sum: /dev/zvol/x: No such file or directory\n")
