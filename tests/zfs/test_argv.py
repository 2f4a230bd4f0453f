"""argv builders: exact argv per zfs-*(8)/zpool-*(8), options before operands, both platforms."""

from __future__ import annotations

import pytest

from bhype_core.errors import ValidationErrors
from bhype_zfs import argv, pool_argv
from bhype_zfs.argv import Tools

BSD = Tools(platform="freebsd")
LINUX = Tools("/usr/sbin/zfs", "/usr/sbin/zpool", "linux")


def test_unknown_platform_is_refused():
    with pytest.raises(ValidationErrors, match="platform"):
        Tools(platform="windows")


@pytest.mark.parametrize(("layout", "disks", "words"), [
    ("single", ["/dev/ada1"], ["tank", "gpt/tank-0"]),
    ("mirror", ["/dev/ada1", "/dev/ada2"], ["tank", "mirror", "gpt/tank-0", "gpt/tank-1"]),
    ("raidz1", ["/dev/ada1", "/dev/ada2", "/dev/ada3"], ["tank", "raidz1", "gpt/tank-0", "gpt/tank-1", "gpt/tank-2"]),
    ("raidz2", [f"/dev/ada{i}" for i in range(1, 5)], ["tank", "raidz2", *(f"gpt/tank-{i}" for i in range(4))]),
    ("raidz3", [f"/dev/ada{i}" for i in range(1, 6)], ["tank", "raidz3", *(f"gpt/tank-{i}" for i in range(5))]),
])
def test_zpool_create_layouts_freebsd_use_gpt_labels(layout, disks, words):
    members = pool_argv.pool_disks(BSD, "tank", disks)
    command = pool_argv.create_pool(BSD, "tank", layout, [m.vdev for m in members])
    assert command == ["zpool", "create", "-o", "ashift=12", "-O", "compression=lz4", "-O", "atime=off", *words]
    # Every disk is partitioned first: GPT + one labelled freebsd-zfs partition (gpart(8)).
    assert pool_argv.partition_disk(BSD, members[0]) == [
        ["gpart", "create", "-s", "gpt", "ada1"],
        ["gpart", "add", "-t", "freebsd-zfs", "-a", "1m", "-l", "tank-0", "ada1"],
    ]


def test_zpool_create_linux_gives_whole_disks_and_needs_no_partitioning():
    disks = ["/dev/disk/by-id/virtio-a", "/dev/disk/by-id/virtio-b"]
    members = pool_argv.pool_disks(LINUX, "tank", disks)
    assert [m.vdev for m in members] == disks
    assert pool_argv.partition_disk(LINUX, members[0]) == []
    command = pool_argv.create_pool(LINUX, "tank", "mirror", disks, ashift=None, mountpoint="/vm", force=True,
                                    fs_properties={"compression": "zstd"})
    assert command == ["/usr/sbin/zpool", "create", "-f", "-O", "compression=zstd", "-m", "/vm", "tank", "mirror",
                       *disks]


@pytest.mark.parametrize(("layout", "count", "message"), [
    ("mirror", 1, "at least 2"),
    ("raidz2", 2, "at least 3"),
    ("raidz3", 3, "at least 4"),
    ("single", 2, "exactly one"),
    ("raid5", 3, "must be one of"),
])
def test_zpool_create_refuses_bad_layouts(layout, count, message):
    with pytest.raises(ValidationErrors, match=message):
        pool_argv.create_pool(LINUX, "tank", layout, [f"/dev/vd{c}" for c in "abcde"[:count]])


def test_pool_disks_refuse_duplicates_non_devices_and_long_labels():
    with pytest.raises(ValidationErrors) as caught:
        pool_argv.pool_disks(BSD, "tank", ["/dev/ada1", "/dev/ada1", "ada2"])
    paths = [e.path for e in caught.value.errors]
    assert paths == ["disks.1", "disks.2"]
    with pytest.raises(ValidationErrors, match="too long for GPT labels"):
        pool_argv.pool_disks(BSD, "p" * 40, ["/dev/ada1"])
    assert pool_argv.pool_disks(LINUX, "p" * 40, ["/dev/vda"])[0].vdev == "/dev/vda"  # no label on Linux


def test_pool_queries():
    assert pool_argv.list_pools(BSD) == ["zpool", "list", "-Hp", "-o", "name,size,alloc,free,frag,cap,dedup,health"]
    assert pool_argv.pool_status(BSD, "tank") == ["zpool", "status", "-P", "-p", "tank"]
    assert pool_argv.import_pool(LINUX, "tank", ["/dev/disk/by-id"]) == [
        "/usr/sbin/zpool", "import", "-d", "/dev/disk/by-id", "tank"]
    assert pool_argv.export_pool(BSD, "tank") == ["zpool", "export", "tank"]
    with pytest.raises(ValidationErrors, match="pool"):
        pool_argv.export_pool(BSD, "-f")


def test_disk_probes_differ_by_platform():
    bsd = pool_argv.disk_probe_commands(BSD, "/dev/ada1")
    assert bsd["partitions"] == ["gpart", "show", "-p", "ada1"]
    assert bsd["filesystem"] == ["fstyp", "/dev/ada1"]
    assert bsd["mounts"] == ["mount", "-p"] and bsd["swaps"] == ["swapctl", "-l"]
    linux = pool_argv.disk_probe_commands(LINUX, "/dev/vda")
    assert linux["udev"] == ["udevadm", "info", "--query=property", "--name=/dev/vda"]
    assert linux["mounts"] == ["cat", "/proc/mounts"]
    assert (bsd["label"], linux["label"]) == (["zdb", "-l", "/dev/ada1"], ["zdb", "-l", "/dev/vda"])


@pytest.mark.parametrize("tools", [BSD, LINUX], ids=["freebsd", "linux"])
def test_zvol_creation_sets_volmode_dev_on_both_platforms(tools):
    command = argv.create_volume(tools, "tank/bhype/vms/web1/disk0", 2**30, volblocksize=16384)
    assert command == [tools.zfs, "create", "-s", "-V", "1073741824", "-o", "volmode=dev", "-o",
                       "volblocksize=16384", "tank/bhype/vms/web1/disk0"]
    thick = argv.create_volume(tools, "tank/v", 2**20, sparse=False)
    assert "-s" not in thick and thick[-1] == "tank/v"
    assert argv.zvol_device(tools, "tank/bhype/vms/web1/disk0") == "/dev/zvol/tank/bhype/vms/web1/disk0"


def test_device_settling_and_file_size_differ_by_platform():
    assert argv.settle_devices(LINUX) == [["udevadm", "settle", "--timeout=30"]]
    assert argv.settle_devices(BSD) == []
    assert argv.file_size(BSD, "/vm/a.img") == ["stat", "-f", "%z", "/vm/a.img"]
    assert argv.file_size(LINUX, "/vm/a.img") == ["stat", "-c", "%s", "/vm/a.img"]


def test_zvol_sizes_and_block_sizes_are_checked():
    with pytest.raises(ValidationErrors) as caught:
        argv.create_volume(BSD, "tank/v", 0, volblocksize=3000)
    assert {e.path for e in caught.value.errors} == {"size", "volblocksize"}
    with pytest.raises(ValidationErrors, match="not a multiple of volblocksize"):
        argv.create_volume(BSD, "tank/v", 10_000, volblocksize=8192)


def test_dataset_names_are_checked_before_any_argv_exists():
    for bad in ("", "tank//a", "tank/../x", "tank/a b", "-x/a", "tank/a@b"):
        with pytest.raises(ValidationErrors):
            argv.create_filesystem(BSD, bad)
    assert argv.create_filesystem(BSD, "tank/a", {"compression": "lz4"}, parents=True) == [
        "zfs", "create", "-p", "-o", "compression=lz4", "tank/a"]


def test_snapshot_rollback_destroy():
    assert argv.snapshot(BSD, ["tank/vm@s1"], recursive=True, properties={"org.bhype:schedule": "n"}) == [
        "zfs", "snapshot", "-r", "-o", "org.bhype:schedule=n", "tank/vm@s1"]
    assert argv.rollback(BSD, "tank/vm@s1") == ["zfs", "rollback", "tank/vm@s1"]
    assert argv.rollback(BSD, "tank/vm@s1", destroy_newer=True) == ["zfs", "rollback", "-r", "tank/vm@s1"]
    assert argv.destroy_snapshots(BSD, "tank/vm", ["a", "b"], recursive=True) == ["zfs", "destroy", "-r", "tank/vm@a,b"]
    assert argv.destroy(BSD, "tank/vm", recursive=True) == ["zfs", "destroy", "-r", "tank/vm"]
    assert "-R" not in argv.destroy(BSD, "tank/vm", recursive=True, dry_run=True)
    with pytest.raises(ValidationErrors):
        argv.destroy_snapshots(BSD, "tank/vm", ["a,b"])
    with pytest.raises(ValidationErrors):
        argv.snapshot(BSD, ["tank/vm"])


def test_holds_clones_promote():
    assert argv.hold(BSD, "bhype-backup", ["tank/vm@s1"], recursive=True) == [
        "zfs", "hold", "-r", "bhype-backup", "tank/vm@s1"]
    assert argv.release(BSD, "bhype-backup", ["tank/vm@s1"]) == ["zfs", "release", "bhype-backup", "tank/vm@s1"]
    assert argv.holds(BSD, ["tank/vm@s1"], recursive=True) == ["zfs", "holds", "-Hp", "-r", "tank/vm@s1"]
    assert argv.clone(BSD, "tank/a/disk0@s", "tank/b/disk0", {"volmode": "dev"}) == [
        "zfs", "clone", "-o", "volmode=dev", "tank/a/disk0@s", "tank/b/disk0"]
    assert argv.promote(BSD, "tank/b") == ["zfs", "promote", "tank/b"]
    with pytest.raises(ValidationErrors, match="tag"):
        argv.hold(BSD, "bad tag", ["tank/vm@s1"])


def test_send_and_receive():
    assert argv.send(BSD, "tank/vm@s2", replicate=True, incremental_from="tank/vm@s1", include_intermediate=True) == [
        "zfs", "send", "-R", "-c", "-I", "@s1", "tank/vm@s2"]
    assert argv.send(BSD, "tank/vm@s1", properties=True, compressed=False, estimate=True) == [
        "zfs", "send", "-p", "-n", "-v", "-P", "tank/vm@s1"]
    assert argv.receive(LINUX, "tank/copy", force=True, properties={"volmode": "dev"}, exclude=["mountpoint"]) == [
        "/usr/sbin/zfs", "receive", "-F", "-u", "-o", "volmode=dev", "-x", "mountpoint", "tank/copy"]


def test_properties_get_set_list():
    assert argv.set_properties(BSD, "tank/vm", {"org.bhype:uuid": "u-1", "volsize": "2048"}) == [
        "zfs", "set", "org.bhype:uuid=u-1", "volsize=2048", "tank/vm"]
    with pytest.raises(ValidationErrors, match="not a user property"):
        argv.set_properties(BSD, "tank/vm", {"Org.Bhype:X": "1"})
    with pytest.raises(ValidationErrors, match="single line"):
        argv.set_properties(BSD, "tank/vm", {"org.bhype:x": "a\tb"})
    assert argv.get_properties(BSD, ["org.bhype:uuid"], ["tank/vms"], depth=1, sources=["local"]) == [
        "zfs", "get", "-Hp", "-o", "name,property,value,source", "-d", "1", "-s", "local", "org.bhype:uuid", "tank/vms"]
    # zfs-list(8): every option before the first operand (FreeBSD getopt does not reorder).
    command = argv.list_datasets(BSD, ["name", "used"], ["tank"], types=("snapshot",), recursive=True, sort="createtxg")
    assert command == ["zfs", "list", "-Hp", "-o", "name,used", "-t", "snapshot", "-r", "-s", "createtxg", "tank"]
    with pytest.raises(ValidationErrors, match="types"):
        argv.list_datasets(BSD, ["name"], types=("zvol",))
