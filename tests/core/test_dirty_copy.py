"""The checked block-range copy of a warm move (issue 17, ``bhype_core.transfer.dirty_copy``):
the real sender and receiver processes joined by the runner's pipe on this host (the move runs
the receiver through ssh; tests/migrate/test_move_dirty.py covers that path).

A first copy sends the data blocks only (the target stays sparse), a later one exactly the
blocks it is given (a zeroed block is zeroed there), every block's SHA-256 read back on the
target must match what was sent, and the digest kept here equals the one the target computes
from its manifest, without re-reading either image.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import pytest

from bhype_core.errors import BhypeError
from bhype_core.host.runner import LocalRunner
from bhype_core.transfer.dirty_copy import BLOCK, PREFIX, BlockMap, copy_blocks, manifest_digest, manifest_path

MIB = 1024 * 1024


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def write(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write(data)


@pytest.fixture
def images(tmp_path: Path) -> tuple[Path, Path]:
    source, target = tmp_path / "src" / "disk0.img", tmp_path / "dst" / "disk0.img"
    source.parent.mkdir()
    target.parent.mkdir()
    with open(source, "wb") as handle:
        handle.truncate(8 * MIB + 4096)  # a short last block
    write(source, 0, os.urandom(4096))
    write(source, 3 * MIB + 100, os.urandom(2 * MIB))  # blocks 3, 4, 5
    write(source, 8 * MIB, os.urandom(4096))
    return source, target


def test_first_copy_sends_data_blocks_and_digests_agree(images: tuple[Path, Path]) -> None:
    source, target = images
    known = BlockMap(size=source.stat().st_size)
    copied = copy_blocks(LocalRunner(), str(source), str(target), None, known)
    assert sha(target) == sha(source)
    assert sorted(known.hashes) == [0, 3 * MIB, 4 * MIB, 5 * MIB, 8 * MIB]
    assert copied.sent == 5 * BLOCK
    assert target.stat().st_blocks * 512 < 6 * MIB  # holes stayed holes
    assert known.digest().startswith(PREFIX)
    assert manifest_digest(target) == known.digest()


def test_later_copy_sends_only_the_given_blocks_and_zeroes_zeroed_ones(images: tuple[Path, Path]) -> None:
    source, target = images
    known = BlockMap(size=source.stat().st_size)
    runner = LocalRunner()
    copy_blocks(runner, str(source), str(target), None, known)
    write(source, 0, bytes(4096))  # block 0 is all zero now
    write(source, 4 * MIB + 7, b"changed")
    write(source, 6 * MIB, os.urandom(10))  # a new block
    write(source, 7 * MIB, os.urandom(10))  # written but not reported: must not be sent
    copied = copy_blocks(runner, str(source), str(target), [0, 4 * MIB, 6 * MIB], known)
    assert copied.blocks == 3 and copied.sent == 2 * BLOCK
    with open(target, "rb") as handle:
        handle.seek(7 * MIB)
        assert handle.read(10) == bytes(10)  # only the given blocks went
    write(source, 7 * MIB, bytes(10))
    assert sha(target) == sha(source)
    assert 0 not in known.hashes and 6 * MIB in known.hashes
    assert manifest_digest(target) == known.digest()


def test_a_block_written_wrong_on_the_target_fails_the_copy(images: tuple[Path, Path]) -> None:
    source, target = images

    def corrupting(argv: list[str]) -> list[str]:  # a receiver whose disk alters what it writes
        code = argv[2].replace("os.pwrite(fd, data, offset)", "os.pwrite(fd, bytes([data[0] ^ 1]) + data[1:], offset)")
        assert code != argv[2]
        return [argv[0], argv[1], code, *argv[3:]]

    with pytest.raises(BhypeError, match="read back differently"):
        copy_blocks(LocalRunner(), str(source), str(target), None, BlockMap(size=source.stat().st_size),
                    wrap=corrupting)


def test_a_manifest_for_another_length_is_not_used(images: tuple[Path, Path]) -> None:
    source, target = images
    known = BlockMap(size=source.stat().st_size)
    copy_blocks(LocalRunner(), str(source), str(target), None, known)
    assert Path(manifest_path(str(target))).is_file()
    os.truncate(target, 16 * MIB)
    assert manifest_digest(target) is None
