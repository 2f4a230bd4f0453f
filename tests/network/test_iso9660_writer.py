"""The pure-Python ISO 9660 writer, read back with an independent reader (pycdlib) and blkid."""

from __future__ import annotations

import io
import os
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pycdlib
import pytest

from bhype_core.iso9660 import SECTOR, IsoError, build_iso, iso_name
from bhype_core.testing.parts import missing, require_program

WHEN = datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)


def open_iso(image: bytes) -> pycdlib.PyCdlib:
    iso = pycdlib.PyCdlib()
    iso.open_fp(io.BytesIO(image))
    return iso


def read(iso: pycdlib.PyCdlib, **path: str) -> bytes:
    out = io.BytesIO()
    iso.get_file_from_iso_fp(out, **path)
    return out.getvalue()


def test_files_read_back_by_rock_ridge_joliet_and_iso_names() -> None:
    files = {"user-data": b"#cloud-config\n", "meta-data": b"instance-id: x\n", "network-config": b"version: 2\n"}
    iso = open_iso(build_iso(files, "cidata", WHEN))
    assert iso.has_rock_ridge() and iso.has_joliet()
    assert iso.pvd.volume_identifier.rstrip(b" ") == b"cidata"
    assert iso.joliet_vd.volume_identifier.decode("utf-16-be").rstrip() == "cidata"
    for name, content in files.items():
        assert read(iso, rr_path=f"/{name}") == content
        assert read(iso, joliet_path=f"/{name}") == content
    assert read(iso, iso_path="/USER_DATA.;1") == files["user-data"]
    names = sorted(child.rock_ridge.name() for child in iso.list_children(rr_path="/") if child.is_file())
    assert names == [b"meta-data", b"network-config", b"user-data"]
    iso.close()


def test_large_and_empty_files_keep_exact_sizes() -> None:
    big = bytes(range(256)) * 40  # 10240 bytes: five sectors, the last one partly used
    iso = open_iso(build_iso({"big.bin": big, "empty": b""}, "data", WHEN))
    assert read(iso, rr_path="/big.bin") == big
    assert read(iso, rr_path="/empty") == b""
    iso.close()


def test_many_files_spill_the_directory_over_several_sectors() -> None:
    files = {f"file-number-{n:02d}.txt": f"content {n}\n".encode() for n in range(40)}
    image = build_iso(files, "many", WHEN)
    iso = open_iso(image)
    for name, content in files.items():
        assert read(iso, rr_path=f"/{name}") == content
        assert read(iso, joliet_path=f"/{name}") == content
    iso.close()
    assert len(image) % SECTOR == 0


def test_image_is_reproducible_for_a_fixed_time() -> None:
    files = {"a": b"1", "b": b"2"}
    assert build_iso(files, "x", WHEN) == build_iso(files, "x", WHEN)
    assert build_iso(files, "x", WHEN) != build_iso({"a": b"1", "b": b"3"}, "x", WHEN)


def test_iso_names_are_unique_level2_identifiers() -> None:
    taken: set[str] = set()
    first = iso_name("user-data", taken)
    taken.add(first)
    second = iso_name("user_data", taken)
    assert first == "USER_DATA.;1"
    assert second != first and second.endswith(";1")


@pytest.mark.parametrize(
    ("files", "label", "message"),
    [
        ({"a": b""}, "has space", "label"),
        ({"a": b""}, "", "label"),
        ({"../etc": b""}, "ok", "file name"),
        ({"dir/file": b""}, "ok", "file name"),
        ({f"f{n}": b"" for n in range(65)}, "ok", "at most"),
    ],
)
def test_bad_input_is_refused_naming_what(files: dict, label: str, message: str) -> None:
    with pytest.raises(IsoError, match=message):
        build_iso(files, label, WHEN)


def test_blkid_sees_the_iso9660_label(tmp_path: Path) -> None:
    require_program("blkid", "util-linux")
    path = tmp_path / "seed.iso"
    path.write_bytes(build_iso({"meta-data": b"x"}, "cidata", WHEN))
    out = subprocess.run(["blkid", "-o", "export", str(path)], capture_output=True, text=True, check=True).stdout
    assert "TYPE=iso9660" in out.splitlines()
    assert "LABEL=cidata" in out.splitlines()


def test_busybox_findfs_finds_a_small_image_by_label(tmp_path: Path) -> None:
    """busybox volume_id (the tiny guest's findfs) reads 0x11000 bytes at once: the writer pads
    like genisoimage so a three-file seed is recognised."""
    busybox = require_program("busybox", "busybox")
    if os.geteuid() != 0 or not Path("/dev/loop-control").exists():
        missing("loop", "needs root and loop devices (losetup)")
    path = tmp_path / "seed.iso"
    path.write_bytes(build_iso({"meta-data": b"x"}, "cidata", WHEN))
    loop = subprocess.run(["losetup", "-f", "--show", "-r", str(path)], capture_output=True, text=True, check=True)
    device = loop.stdout.strip()
    try:
        found = subprocess.run([busybox, "findfs", "LABEL=cidata"], capture_output=True, text=True)
    finally:
        subprocess.run(["losetup", "-d", device], check=False)
    assert found.returncode == 0, found.stderr
    assert found.stdout.strip() == device
