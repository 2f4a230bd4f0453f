"""The guest-image cache cannot poison itself (issue 13): the package closure does not depend on
what the archive cache holds, builds are locked, private until published, and logged."""

from __future__ import annotations

import multiprocessing
import os
import time
from pathlib import Path

import pytest

from bhype_core.testing import guest_image, zfs_guest
from bhype_testimages import debian, guest_cache, tiny_image, zfs_image

FIXTURES = Path(__file__).parent / "fixtures"
DEADLINE = 120.0  # a guard against a hung helper process, never an assertion on speed


def test_print_uris_lists_every_file_with_its_size_and_checksum() -> None:
    files = debian.parse_print_uris((FIXTURES / "apt-get-print-uris-dropbear-bin.txt").read_text())
    names = [file.filename.split("_")[0] for file in files]
    assert names == ["gcc-12-base", "libgcc-s1", "libc6", "libcrypt1", "libgmp10", "libtommath1",
                     "libtomcrypt1", "zlib1g", "dropbear-bin"]
    libcrypt = files[3]
    assert libcrypt.filename == "libcrypt1_1%3a4.4.33-2_amd64.deb" and libcrypt.size == 89464
    assert files[-1].checksum == ("md5", "f69b118ed26647a14cdc24d07a56f79f")
    zlib = files[7]  # apt 2.6 prints no hash for a file from another archive (security)
    assert zlib.filename.startswith("zlib1g_") and zlib.checksum is None


def test_a_cached_file_counts_only_with_the_right_size_and_checksum(tmp_path: Path) -> None:
    deb = tmp_path / "x.deb"
    deb.write_bytes(b"abc")
    md5 = "900150983cd24fb0d6963f7d28e17f72"
    assert debian.ArchiveFile("u", "x.deb", 3, ("md5", md5)).is_valid(deb)
    assert not debian.ArchiveFile("u", "x.deb", 3, ("md5", "0" * 32)).is_valid(deb)
    assert not debian.ArchiveFile("u", "x.deb", 4, None).is_valid(deb)
    assert not debian.ArchiveFile("u", "y.deb", 3, None).is_valid(tmp_path / "y.deb")


def test_the_guests_print_the_markers_the_kit_waits_for() -> None:
    assert f'say "{guest_image.READY_MARKER} hostname=' in tiny_image.INIT_SCRIPT
    assert f'say "{zfs_guest.READY_MARKER} zfs=' in zfs_image.INIT_SCRIPT


@pytest.mark.guest
@pytest.mark.slow
def test_a_cache_already_holding_packages_still_yields_the_whole_closure(tmp_path: Path) -> None:
    """The bug of issue 13: a cache filled by an unfinished build made the closure empty, and
    the ZFS image lost its userland (no ld-linux-x86-64.so.2). Real apt, real Debian archive."""
    archive = debian.DebianArchive(tmp_path / "apt", debian.bookworm_sources())
    first = archive.download_closure(["dropbear-bin"])
    names = {deb.name for deb in first}
    assert any(name.startswith("libc6_") for name in names) and any(n.startswith("dropbear-bin_") for n in names)

    # The poisoned state: every file is in the archive cache, so apt has nothing left to print.
    argv = ["apt-get", *archive.options(), "-q", "-y", "--no-install-recommends", "--download-only",
            "--print-uris", "install", "dropbear-bin"]
    assert debian.parse_print_uris(archive.runner.run(argv).stdout) == []

    second = archive.download_closure(["dropbear-bin"])
    assert second == first

    # An interrupted download: one file gone, one truncated. Both are fetched again.
    libc6 = next(deb for deb in first if deb.name.startswith("libc6_"))
    dropbear = next(deb for deb in first if deb.name.startswith("dropbear-bin_"))
    libc6.unlink()
    dropbear.write_bytes(dropbear.read_bytes()[:1000])
    third = archive.download_closure(["dropbear-bin"])
    assert third == first
    by_name = {file.filename: file for file in archive.closure(["dropbear-bin"])}
    assert all(by_name[deb.name].is_valid(deb) for deb in third)


# --- two builders, one cache ------------------------------------------------------------------


def _wait_for(predicate, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.02)


def _fake_build(root: Path, kind_dir: Path, suffix: str) -> Path:
    """A build step that records itself and waits for the test's go-ahead, then publishes
    through the real staging directory."""
    with guest_cache.staging_dir(kind_dir) as staging:
        with (root / "builds.txt").open("a") as handle:
            handle.write(f"{os.getpid()}\n")
        (staging / "vmlinuz").write_bytes(b"kernel")
        _wait_for((root / "go").exists, "the go-ahead")
        return guest_cache.publish(staging, kind_dir / f"v1{suffix}", {"kernel": "vmlinuz"})


def _builder(root: str, name: str) -> None:
    entry = guest_cache.cached_entry(Path(root), "demo", "_k", _fake_build)
    (Path(root) / f"result-{name}").write_text(str(entry))


def blocked_on_lock(pid: int, lock_file: Path) -> bool:
    """Whether ``pid`` waits for an flock on ``lock_file`` (``/proc/locks`` marks waiters
    with ``->``; see proc(5))."""
    inode = lock_file.stat().st_ino
    for line in Path("/proc/locks").read_text().splitlines():
        fields = line.split()
        if "->" in fields and "FLOCK" in fields:
            waiter = fields[fields.index("->") + 4 :]
            if waiter and int(waiter[0]) == pid and waiter[1].endswith(f":{inode}"):
                return True
    return False


def test_two_builders_one_builds_and_the_other_waits_then_reuses(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    first = context.Process(target=_builder, args=(str(tmp_path), "first"))
    first.start()
    _wait_for((tmp_path / "builds.txt").exists, "the first build to start")
    second = context.Process(target=_builder, args=(str(tmp_path), "second"))
    second.start()
    try:
        _wait_for(lambda: blocked_on_lock(second.pid, tmp_path / "locks" / "demo.lock"),
                  "the second builder to wait on the lock")
        assert not list((tmp_path / "demo").glob("v1*"))  # nothing published mid-build
        (tmp_path / "go").touch()
    finally:
        for process in (first, second):
            process.join(DEADLINE)
    assert (first.exitcode, second.exitcode) == (0, 0)

    assert (tmp_path / "builds.txt").read_text() == f"{first.pid}\n"  # built once
    entry = tmp_path / "demo" / "v1_k"
    assert (tmp_path / "result-first").read_text() == (tmp_path / "result-second").read_text() == str(entry)
    assert guest_cache.read_manifest(entry) == {"kernel": "vmlinuz"}
    log = (tmp_path / "demo" / guest_cache.BUILD_LOG).read_text()
    assert f"pid {first.pid}: built v1_k in " in log and f"pid {second.pid}: reused v1_k" in log
    assert not list((tmp_path / "demo").glob(".tmp-*"))


def test_a_failed_build_is_logged_beside_the_cache_and_publishes_nothing(tmp_path: Path) -> None:
    def broken(root: Path, kind_dir: Path, suffix: str) -> Path:
        with guest_cache.staging_dir(kind_dir) as staging:
            (staging / "half.img").write_bytes(b"x")
            raise LookupError("apt-get --download-only left out ['libc6_2.36_amd64.deb']")

    with pytest.raises(LookupError):
        guest_cache.cached_entry(tmp_path, "demo", "_k", broken)

    log = (tmp_path / "demo" / guest_cache.BUILD_LOG).read_text()
    assert "build FAILED after" in log and "left out ['libc6_2.36_amd64.deb']" in log and "Traceback" in log
    assert guest_cache.find_entry(tmp_path / "demo", "_k") is None
    assert [path.name for path in (tmp_path / "demo").iterdir()] == [guest_cache.BUILD_LOG]
