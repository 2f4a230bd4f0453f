"""grub-bhyve's default root finds the guest's /boot/grub on MBR and on GPT disks.

grub-bhyve itself is FreeBSD-only, but GRUB's partition naming is GRUB's own code: Debian's
``grub-fstest`` reads a disk image with it on Linux (it names the image ``loop0`` where
grub-bhyve's device.map says ``hd0``). The disks are real partition tables (sfdisk) with a real
ext2 file system holding a grub.cfg.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from bhype_core.drivers.bhyve_argv import grub_root
from bhype_core.spec import SpecContext, validate_spec

MIB = 1024 * 1024
GRUB_CFG = "menuentry 'bhype test' { linux /vmlinuz }\n"
LINUX_FS = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"  # GPT type GUID of a Linux file system


def disk_image(path: Path, label: str, files: Path) -> Path:
    """A 16 MiB disk with one partition at 1 MiB holding an ext2 file system made from ``files``."""
    for tool in ("sfdisk", "mke2fs", "grub-fstest"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is missing: tools/install-test-deps installs it (fdisk, e2fsprogs, grub-common)")
    with path.open("wb") as image:
        image.truncate(16 * MIB)
    kind = LINUX_FS if label == "gpt" else "83"
    table = f"label: {label}\nstart=2048, size=20000, type={kind}\n"
    subprocess.run(["sfdisk", "-q", str(path)], input=table, text=True, check=True, timeout=30)
    subprocess.run(["mke2fs", "-q", "-t", "ext2", "-d", str(files), "-E", f"offset={MIB}", str(path), "9000"],
                   check=True, timeout=30)
    return path


def grub_reads(image: Path, root: str) -> subprocess.CompletedProcess[str]:
    """``cat (ROOT)/boot/grub/grub.cfg`` through GRUB's own disk and partition code."""
    device = root.replace("hd0", "loop0", 1)
    return subprocess.run(["grub-fstest", str(image), "cat", f"({device})/boot/grub/grub.cfg"],
                          capture_output=True, text=True, timeout=30)


@pytest.fixture
def boot_files(tmp_path: Path) -> Path:
    files = tmp_path / "files"
    (files / "boot" / "grub").mkdir(parents=True)
    (files / "boot" / "grub" / "grub.cfg").write_text(GRUB_CFG)
    return files


@pytest.mark.parametrize("label", ["gpt", "dos"])
def test_the_default_grub_root_finds_grub_cfg_on_gpt_and_mbr(tmp_path, boot_files, label):
    spec = validate_spec({"name": "deb1", "boot": {"mode": "grub"}}, SpecContext())
    image = disk_image(tmp_path / f"{label}.img", label, boot_files)

    found = grub_reads(image, grub_root(spec))

    assert grub_root(spec) == "hd0,1"
    assert found.returncode == 0 and found.stdout == GRUB_CFG, found.stderr


def test_the_old_msdos_root_does_not_exist_on_a_gpt_disk(tmp_path, boot_files):
    # Why the default changed: grub-bhyve's example root names an MBR partition.
    image = disk_image(tmp_path / "gpt.img", "gpt", boot_files)
    missing = grub_reads(image, "hd0,msdos1")
    assert missing.returncode != 0 and "no such partition" in missing.stderr
