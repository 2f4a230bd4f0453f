"""The peer's side of a dirty-block warm move without hosts: the block receiver's manifest
stands for a disk's digest (and is not a file of the VM), and the move option is checked."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bhype_core.errors import ValidationErrors
from bhype_core.host.runner import LocalRunner
from bhype_core.transfer.dirty_copy import BlockMap, copy_blocks
from bhype_migrate.checksums import checksum_tree, mismatches, regular_files
from bhype_migrate.plan import move_options

MIB = 2**20


def test_a_block_copied_disk_is_verified_from_its_manifest(tmp_path: Path) -> None:
    source, incoming = tmp_path / "vm", tmp_path / "incoming"
    source.mkdir()
    incoming.mkdir()
    with open(source / "disk0.img", "wb") as handle:
        handle.truncate(4 * MIB)
        handle.seek(MIB)
        handle.write(os.urandom(3000))
    (source / "OVMF_VARS.fd").write_bytes(b"vars")
    (incoming / "OVMF_VARS.fd").write_bytes(b"vars")
    known = BlockMap(size=4 * MIB)
    copy_blocks(LocalRunner(), str(source / "disk0.img"), str(incoming / "disk0.img"), None, known)

    assert regular_files(incoming) == ["OVMF_VARS.fd", "disk0.img"]  # .bhype-blocks/ is not the VM's
    expected = {**checksum_tree(source, ["OVMF_VARS.fd"]), "disk0.img": known.digest()}
    assert mismatches(expected, checksum_tree(incoming, regular_files(incoming), expected=expected)) == []
    # Without the receiver's record the disk cannot pass; another digest kind reads the file.
    (incoming / ".bhype-blocks" / "disk0.img.json").unlink()
    assert mismatches(expected, checksum_tree(incoming, regular_files(incoming), expected=expected)) == \
        ["disk0.img: checksum differs"]
    assert checksum_tree(incoming, ["disk0.img"])["disk0.img"].startswith("sparse-sha256:")


def test_the_dirty_tracking_option_is_a_boolean() -> None:
    assert move_options("v", "b", "warm", "rsync", False, False, {"dirty_tracking": False}) is None
    with pytest.raises(ValidationErrors, match="dirty_tracking"):
        move_options("v", "b", "warm", "rsync", False, False, {"dirty_tracking": "yes"})
