"""A target flagged ``windows`` against a file system that refuses what NTFS refuses: an exFAT
image on a loop device, mounted through FUSE (exfat-fuse; the kernel here has no vfat/exfat
module). exFAT rejects ``: * ? " < > | \\`` in names, compares names without case, has no hard
links, no symlinks and no POSIX permissions or owners, like NTFS seen through Windows rsync.

bHype's Windows scheme: safe lower-case names (originals in the manifest), ``-rlt`` without
owner/group/permissions, ``--copy-dest`` against the previous point instead of hard links
(each point a full copy made on the target; only changed blocks cross the wire), and every
permission and size kept in the manifest, so a restore is bit-identical."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from bhype_backup.layout import is_safe
from bhype_backup.manifest import parse_manifest

from .world import MiB, write_pattern


@pytest.fixture
def exfat(tmp_path):
    for program in ("mkfs.exfat", "mount.exfat-fuse", "losetup"):
        if shutil.which(program) is None:
            pytest.fail(f"{program} is missing: install exfatprogs and exfat-fuse (tools/install-test-deps)")
    image = tmp_path / "exfat.img"
    with image.open("wb") as handle:
        handle.truncate(256 * MiB)
    subprocess.run(["mkfs.exfat", str(image)], check=True, capture_output=True)
    loop = subprocess.run(["losetup", "-f", "--show", str(image)], check=True, capture_output=True,
                          text=True).stdout.strip()
    mount = tmp_path / "win"
    mount.mkdir()
    try:
        subprocess.run(["mount.exfat-fuse", loop, str(mount)], check=True, capture_output=True)
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=False, capture_output=True)
        subprocess.run(["losetup", "-d", loop], check=False, capture_output=True)


def test_the_target_refuses_what_ntfs_refuses(exfat):
    for bad in ['a:b', 'a*b', 'a?b', 'a"b', 'a<b', 'a>b', 'a|b', 'a\\b']:
        with pytest.raises(OSError):
            (exfat / bad).write_text("x")
    (exfat / "Case").write_text("one")
    (exfat / "case").write_text("two")
    assert [p.name for p in exfat.iterdir()] == ["Case"]  # the same file, whatever the case
    with pytest.raises(OSError):
        os.link(exfat / "Case", exfat / "linked")
    with pytest.raises(OSError):
        os.symlink(exfat / "Case", exfat / "sym")


def test_backup_and_restore_through_a_windows_target(world, exfat):
    (exfat / "case").unlink(missing_ok=True)
    world.create_vm("win", disks=["16M", "8M"])
    write_pattern(world.disk("win", 0), 11, offset=2 * MiB, length=4 * MiB)
    (world.root / "ds" / "vms" / "win" / "disk1.img").chmod(0o640)
    world.ok("backup.target_add", {"name": "win", "destination": str(exfat / "bhype"), "windows": True})
    (exfat / "bhype").mkdir()
    first = world.ok("backup.run", {"vm": "win", "target": "win", "mode": "stop", "job": None})
    write_pattern(world.disk("win", 0), 12, offset=9 * MiB, length=MiB // 2)
    second = world.ok("backup.run", {"vm": "win", "target": "win", "mode": "stop", "job": None})
    assert second["literal_bytes"] < MiB  # --copy-dest: the basis is copied on the target, not sent
    names = [p.name for p in (exfat / "bhype").rglob("*")]
    assert all(is_safe(name) for name in names), names
    stored = exfat / "bhype" / second["path"]
    manifest = parse_manifest((stored / "manifest.json").read_bytes())
    originals = {f.stored: f.original for f in manifest.files}
    assert originals["config/ovmf_vars.fd"] == "OVMF_VARS.fd"
    assert {f.volume: f.mode for f in manifest.files if f.role == "disk"} == {"disk0": "0600", "disk1": "0640"}
    assert (stored / "disks" / "disk0.img").read_bytes() == world.disk("win", 0).read_bytes()
    # Each point stands alone (no hard links exist on exFAT): the first one still holds the old data.
    assert (exfat / "bhype" / first["path"] / "disks" / "disk0.img").read_bytes() != world.disk("win", 0).read_bytes()
    restored = world.ok("backup.restore", {"point": second["point"], "vm": "win", "as": "win2"})
    assert restored["new_vm"]
    for index, mode in ((0, 0o600), (1, 0o640)):
        path = world.disk("win2", index)
        assert path.read_bytes() == world.disk("win", index).read_bytes()
        assert path.stat().st_mode & 0o777 == mode  # from the manifest: exFAT keeps no modes
    assert world.disk("win2", 0).stat().st_blocks * 512 < 16 * MiB  # sparse again


def test_names_that_differ_only_in_case_get_distinct_safe_names(world, exfat):
    world.ok("vm.create", {"name": "cased", "overrides": {"disks": [{"size": "4M", "volume": "Data"},
                                                                    {"size": "4M", "volume": "data"}]}})
    vm_dir = world.root / "ds" / "vms" / "cased"
    write_pattern(vm_dir / "Data.img", 1, length=MiB)
    write_pattern(vm_dir / "data.img", 2, length=MiB)
    world.ok("backup.target_add", {"name": "win", "destination": str(exfat), "windows": True})
    point = world.ok("backup.run", {"vm": "cased", "target": "win", "mode": "stop", "job": None})
    manifest = parse_manifest((exfat / point["path"] / "manifest.json").read_bytes())
    stored = {f.volume: f.stored for f in manifest.files if f.role == "disk"}
    assert stored["Data"].lower() != stored["data"].lower()
    assert all(is_safe(Path(name).name) for name in stored.values())
    for volume, name in stored.items():
        assert (exfat / point["path"] / name).read_bytes() == (vm_dir / f"{volume}.img").read_bytes()
    world.ok("backup.restore", {"point": point["point"], "vm": "cased", "as": "cased2"})
    for volume in ("Data", "data"):
        assert (world.root / "ds" / "vms" / "cased2" / f"{volume}.img").read_bytes() == \
            (vm_dir / f"{volume}.img").read_bytes()
