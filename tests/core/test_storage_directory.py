"""Directory storage on the real file system: sparse images, confinement, grow, copy, ISOs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bhype_core.builtins import storage as core_storage
from bhype_core.errors import ConfigError, Conflict, NotFound, ValidationErrors
from bhype_core.registry import Registry
from bhype_core.runtime import build_runtime
from bhype_core.storage.directory import DirectoryStorage, OutsideDatastore
from bhype_core.storage.sparse import allocated_bytes, copy_sparse
from bhype_core.testing import make_settings
from bhype_core.units import GIB, MIB


@pytest.fixture
def store(tmp_path: Path) -> DirectoryStorage:
    return DirectoryStorage(tmp_path / "ds")


def test_create_volume_is_sparse_and_inside_the_vm_dir(store):
    vm_dir = store.create_vm_dir("web1")
    volume = store.create_volume("web1", "disk0", 20 * GIB)
    assert volume.path == vm_dir / "disk0.img"
    assert os.stat(volume.path).st_size == 20 * GIB
    assert allocated_bytes(volume.path) < MIB  # nothing allocated until the guest writes
    assert store.volume("web1", "disk0") == volume
    assert oct(os.stat(volume.path).st_mode & 0o777) == oct(0o600)


def test_create_refuses_existing_dir_and_volume(store):
    store.create_vm_dir("web1")
    with pytest.raises(Conflict, match="already exists"):
        store.create_vm_dir("web1")
    store.create_volume("web1", "disk0", MIB)
    with pytest.raises(Conflict, match="already exists"):
        store.create_volume("web1", "disk0", MIB)


def test_volume_needs_the_vm_dir(store):
    with pytest.raises(NotFound, match="VM directory"):
        store.create_volume("ghost", "disk0", MIB)


@pytest.mark.parametrize("name", ["..", ".", "../etc", "/etc", "a/b", "-rf", "", "x\0y"])
def test_names_that_could_leave_the_datastore_are_refused(store, name):
    with pytest.raises(ValidationErrors) as raised:
        store.vm_dir(name)
    assert raised.value.errors[0].path == "name"
    store.create_vm_dir("ok")
    with pytest.raises(ValidationErrors) as raised:
        store.create_volume("ok", name, MIB)
    assert raised.value.errors[0].path == "volume"
    with pytest.raises(ValidationErrors) as raised:
        store.iso_path(name)
    assert raised.value.errors[0].path == "cdrom"


def test_symlinked_vm_dir_pointing_outside_is_refused(store, tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (store.root / "vms").mkdir(parents=True)
    (store.root / "vms" / "evil").symlink_to(outside)
    with pytest.raises(OutsideDatastore, match="outside datastore"):
        store.create_volume("evil", "disk0", MIB)
    assert list(outside.iterdir()) == []
    with pytest.raises(OutsideDatastore):
        store.vm_dir("evil")
    # Removing the VM removes the link, never what it points to.
    (outside / "precious").write_text("keep")
    store.remove_vm_dir("evil")
    assert not os.path.lexists(store.root / "vms" / "evil")
    assert (outside / "precious").read_text() == "keep"


def test_symlinked_disk_is_never_written_through(store, tmp_path):
    store.create_vm_dir("web1")
    victim = store.root / "vms" / "victim.txt"
    victim.write_text("data")
    (store.root / "vms" / "web1" / "disk0.img").symlink_to(victim)  # inside, but a symlink
    with pytest.raises(Conflict):
        store.create_volume("web1", "disk0", MIB)
    with pytest.raises(Conflict, match="not a regular file"):
        store.grow_volume("web1", "disk0", 2 * MIB)
    assert victim.read_text() == "data"


def test_symlinked_iso_folder_outside_is_refused(store, tmp_path):
    outside = tmp_path / "isos-elsewhere"
    outside.mkdir()
    (outside / "debian.iso").write_bytes(b"iso")
    store.root.mkdir(parents=True)
    (store.root / "isos").symlink_to(outside)
    with pytest.raises(OutsideDatastore):
        store.iso_path("debian.iso")
    assert store.isos() == []


def test_isos_lists_regular_files_of_the_iso_folder(store):
    (store.root / "isos").mkdir(parents=True)
    (store.root / "isos" / "b.iso").write_bytes(b"x")
    (store.root / "isos" / "a.iso").write_bytes(b"x")
    (store.root / "isos" / "sub").mkdir()
    assert store.isos() == ["a.iso", "b.iso"]
    assert store.iso_path("a.iso") == store.root / "isos" / "a.iso"


def test_grow_keeps_data_and_refuses_shrink(store):
    store.create_vm_dir("web1")
    volume = store.create_volume("web1", "disk0", MIB)
    with open(volume.path, "r+b") as image:
        image.write(b"bootsector")
    grown = store.grow_volume("web1", "disk0", 3 * MIB)
    assert grown.size == 3 * MIB == os.stat(volume.path).st_size
    assert volume.path.read_bytes()[:10] == b"bootsector"
    with pytest.raises(ValidationErrors, match="shrinking") as raised:
        store.grow_volume("web1", "disk0", 2 * MIB)
    assert raised.value.errors[0].path == "size"
    assert os.stat(volume.path).st_size == 3 * MIB


@pytest.mark.parametrize("size", [0, -1, True, "1G"])
def test_bad_sizes_are_refused(store, size):
    store.create_vm_dir("web1")
    with pytest.raises(ValidationErrors) as raised:
        store.create_volume("web1", "disk0", size)
    assert raised.value.errors[0].path == "size"
    assert not (store.root / "vms" / "web1" / "disk0.img").exists()


def test_delete_volume_and_remove_vm_dir(store):
    store.create_vm_dir("web1")
    store.create_volume("web1", "disk0", MIB)
    store.delete_volume("web1", "disk0")
    with pytest.raises(NotFound):
        store.volume("web1", "disk0")
    with pytest.raises(NotFound):
        store.delete_volume("web1", "disk0")
    (store.vm_dir("web1") / "uefi-vars.fd").write_bytes(b"nvram")
    store.remove_vm_dir("web1")
    assert not store.vm_dir("web1").exists()
    store.remove_vm_dir("web1")  # absent: nothing to do


def test_copy_is_sparse_exact_and_reports_progress(store):
    store.create_vm_dir("src")
    store.create_vm_dir("dst")
    volume = store.create_volume("src", "disk0", 64 * MIB)
    pattern = os.urandom(4096)
    with open(volume.path, "r+b") as image:
        image.seek(5 * MIB)
        image.write(pattern)
        image.seek(40 * MIB)
        image.write(pattern * 300)
    seen: list[int] = []
    copy = store.copy_volume("src", "disk0", "dst", "disk0", progress=lambda p, m: seen.append(p))
    assert copy.size == 64 * MIB == os.stat(copy.path).st_size
    assert copy.path.read_bytes() == volume.path.read_bytes()
    assert allocated_bytes(copy.path) <= allocated_bytes(volume.path) + MIB
    assert allocated_bytes(copy.path) < 8 * MIB
    assert seen == sorted(seen) and seen[-1] == 100 and len(set(seen)) == len(seen)
    assert not [p for p in store.vm_dir("dst").iterdir() if p.name.startswith(".partial")]
    with pytest.raises(Conflict):
        store.copy_volume("src", "disk0", "dst", "disk0")


def test_failed_copy_leaves_no_partial_file(store):
    store.create_vm_dir("src")
    store.create_vm_dir("dst")
    volume = store.create_volume("src", "disk0", 8 * MIB)
    with open(volume.path, "r+b") as image:
        image.write(os.urandom(4 * MIB))

    def fail(percent, message):
        if percent >= 20:
            raise RuntimeError("cancelled")

    with pytest.raises(RuntimeError, match="cancelled"):
        store.copy_volume("src", "disk0", "dst", "disk1", progress=fail)
    assert list(store.vm_dir("dst").iterdir()) == []


def test_copy_sparse_skips_zero_blocks_without_hole_support(tmp_path, monkeypatch):
    # A file system without SEEK_DATA: data_extents() yields one extent; zero blocks are skipped.
    monkeypatch.delattr(os, "SEEK_DATA")
    source = tmp_path / "src"
    data = b"\0" * (3 << 20) + b"tail" + b"\0" * 100
    source.write_bytes(data)
    with open(source, "rb") as src, open(tmp_path / "dst", "wb") as dst:
        written = copy_sparse(src.fileno(), dst.fileno(), len(data))
    assert (tmp_path / "dst").read_bytes() == data
    assert written < len(data)  # the three zero MiB were not written


def test_directory_backend_registered_and_refuses_remote_runner(tmp_path, plugin_manager, register_plugin):
    register_plugin(core_storage, "core_storage")
    registry = Registry.from_plugins(plugin_manager)
    entry = registry.storage_backends["directory"]
    runtime = build_runtime(make_settings(tmp_path / "data"), plugin_manager)
    store = entry.factory(runtime, {"name": "default"})
    assert store.root == Path(os.path.realpath(tmp_path / "data" / "datastore"))
    remote = build_runtime(
        make_settings(tmp_path / "data", runner={"target": "ssh://root@127.0.0.1:2222"}), plugin_manager
    )
    with pytest.raises(ConfigError, match="runner.target"):
        entry.factory(remote, {"name": "fast", "path": str(tmp_path / "x")})
    with pytest.raises(ConfigError, match="vm.datastores.rel.path"):
        entry.factory(runtime, {"name": "rel", "path": "relative/dir"})
