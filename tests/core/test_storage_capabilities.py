"""Storage capabilities on directory storage (issue 12), on real files: space and per-disk
stats, a file list for rsync, and snapshots refused as "not supported" before anything runs."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from bhype_core.errors import NotSupported
from bhype_core.storage.capabilities import ConsistentPoint, StorageCapability
from bhype_core.storage.directory import DirectoryStorage
from bhype_core.units import GIB, MIB


@pytest.fixture
def store(tmp_path: Path) -> DirectoryStorage:
    return DirectoryStorage(tmp_path / "ds")


def test_space_matches_the_file_system_and_shrinks_as_a_disk_fills(store):
    store.create_vm_dir("web1")
    volume = store.create_volume("web1", "disk0", GIB)
    before = store.space()
    disk_total, _, disk_free = shutil.disk_usage(store.root)
    assert before.size == before.used + before.free and 0 < before.free <= disk_free <= disk_total
    with open(volume.path, "r+b") as disk:
        disk.write(os.urandom(4 * MIB))
        os.fsync(disk.fileno())
    assert store.volume_stats("web1", "disk0").used >= 4 * MIB
    assert store.volume_stats("web1", "disk0").size == GIB  # sparse: the guest sees all of it


def test_volume_stats_show_a_sparse_disk_uses_almost_nothing(store):
    store.create_vm_dir("web1")
    store.create_volume("web1", "disk0", 20 * GIB)
    stats = store.volume_stats("web1", "disk0")
    assert (stats.name, stats.size) == ("disk0", 20 * GIB) and stats.used < MIB


def test_space_of_a_datastore_not_created_yet_is_its_file_systems(tmp_path):
    space = DirectoryStorage(tmp_path / "not" / "yet").space()
    assert space.free > 0 and space.size >= space.free


def test_export_files_lists_regular_files_for_rsync_without_following_links(store, tmp_path):
    vm_dir = store.create_vm_dir("web1")
    store.create_volume("web1", "disk0", MIB)
    (vm_dir / "OVMF_VARS.fd").write_bytes(b"vars")
    (vm_dir / "logs").mkdir()
    (vm_dir / "logs" / "console.log").write_text("boot")
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret").write_text("not the VM's")
    (vm_dir / "escape").symlink_to(outside)
    (vm_dir / "link.img").symlink_to(outside / "secret")
    os.mkfifo(vm_dir / "fifo")

    export = store.export_files("web1")

    assert export.root == vm_dir and export.consistent is False
    assert export.files == ["OVMF_VARS.fd", "disk0.img", "logs/console.log"]
    # The list is what rsync reads: a real rsync run copies exactly these files.
    if shutil.which("rsync"):
        target = tmp_path / "copy"
        listing = tmp_path / "files"
        listing.write_text("\n".join(export.files) + "\n")
        subprocess.run(["rsync", "-a", f"--files-from={listing}", f"{export.root}/", f"{target}/"], check=True)
        copied = sorted(str(p.relative_to(target)) for p in target.rglob("*") if p.is_file())
        assert copied == export.files


def test_snapshot_is_refused_as_not_supported_naming_the_backend(store):
    store.create_vm_dir("web1")
    assert StorageCapability.SNAPSHOT not in store.capabilities
    with pytest.raises(NotSupported) as caught:
        store.require(StorageCapability.SNAPSHOT)
    assert caught.value.message == "datastore: snapshot is not supported by storage backend directory"
    assert caught.value.http_status == 422
    for call in (lambda: store.snapshot("web1", ["disk0"], "bhype-backup"),
                 lambda: store.export_stream(ConsistentPoint("directory", "web1", "p", "t"), "disk0"),
                 lambda: store.vm_dataset("web1"),
                 lambda: store.export_files("web1", ConsistentPoint("directory", "web1", "p", "t"))):
        with pytest.raises(NotSupported, match="not supported by storage backend directory"):
            call()
    assert sorted(os.listdir(store.vm_dir("web1"))) == []  # nothing was made
