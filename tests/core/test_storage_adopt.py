"""Directory storage adopts an existing image in place (issue 21: ``StorageBackend.adopt_volume``):
a hard link to the same inode, never a copy; a symlink, a missing file or another file system is
refused; ``release_volume`` gives the file back (never deleting the data)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bhype_core.errors import Conflict, ValidationErrors
from bhype_core.storage.capabilities import StorageCapability
from bhype_core.storage.directory import DirectoryStorage


@pytest.fixture
def store(tmp_path: Path) -> DirectoryStorage:
    store = DirectoryStorage(tmp_path / "ds")
    store.create_vm_dir("web1")
    return store


def image(path: Path, data: bytes = b"guest data") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)
        handle.truncate(4 << 20)
    return path


def test_adopt_links_the_same_inode(store: DirectoryStorage, tmp_path: Path) -> None:
    source = image(tmp_path / "vm" / "web1" / "disk0.img")
    assert StorageCapability.ADOPT in store.capabilities
    volume = store.adopt_volume("web1", "disk0", str(source))
    assert volume.path == store.volume_path("web1", "disk0") and volume.size == 4 << 20
    assert os.stat(volume.path).st_ino == os.stat(source).st_ino and os.stat(source).st_nlink == 2
    assert store.volume("web1", "disk0").size == 4 << 20
    with pytest.raises(Conflict):
        store.adopt_volume("web1", "disk0", str(source))


def test_symlinks_and_missing_files_are_refused(store: DirectoryStorage, tmp_path: Path) -> None:
    target = image(tmp_path / "secret.img")
    (tmp_path / "link.img").symlink_to(target)
    with pytest.raises(ValidationErrors, match="not a regular file"):
        store.adopt_volume("web1", "disk0", str(tmp_path / "link.img"))
    with pytest.raises(ValidationErrors, match="does not exist"):
        store.adopt_volume("web1", "disk0", str(tmp_path / "absent.img"))
    assert not store.volume_path("web1", "disk0").exists()


def test_another_file_system_is_refused_not_copied(tmp_path: Path) -> None:
    other = Path("/dev/shm")
    if os.stat(other).st_dev == os.stat(tmp_path).st_dev:
        pytest.fail("needs /dev/shm on another file system than the test's tmp_path")
    source = image(tmp_path / "disk0.img")
    store = DirectoryStorage(other / f"bht-adopt-{os.getpid()}")
    try:
        store.create_vm_dir("web1")
        with pytest.raises(ValidationErrors, match="another file system"):
            store.adopt_volume("web1", "disk0", str(source))
        assert not store.volume_path("web1", "disk0").exists()
    finally:
        store.remove_vm_dir("web1")
        os.rmdir(store.root / "vms")
        os.rmdir(store.root)


def test_release_gives_the_file_back(store: DirectoryStorage, tmp_path: Path) -> None:
    source = image(tmp_path / "disk0.img")
    store.adopt_volume("web1", "disk0", str(source))
    store.release_volume("web1", "disk0", str(source))
    assert os.stat(source).st_nlink == 1 and not store.volume_path("web1", "disk0").exists()
    store.release_volume("web1", "disk0", str(source))  # absent is fine
    # vm-bhyve's name was removed meanwhile: the data goes back there, not away.
    store.adopt_volume("web1", "disk0", str(source))
    source.unlink()
    store.release_volume("web1", "disk0", str(source))
    assert source.read_bytes().startswith(b"guest data")


def test_release_never_drops_a_different_file(store: DirectoryStorage, tmp_path: Path) -> None:
    source = image(tmp_path / "disk0.img")
    store.adopt_volume("web1", "disk0", str(source))
    source.unlink()
    image(source, b"another file")
    with pytest.raises(Conflict, match="not the same file"):
        store.release_volume("web1", "disk0", str(source))
    assert store.volume_path("web1", "disk0").read_bytes().startswith(b"guest data")
