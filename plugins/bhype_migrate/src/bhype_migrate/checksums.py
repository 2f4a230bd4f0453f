"""Digests of a VM's files, on the source before the transfer and on the target after it.

A disk image is mostly unwritten (sparse), and hashing gigabytes of zeros on both hosts was
most of a move's offline window (benchmarks/migrate_warm.py). The digest is therefore
``sparse-sha256:`` + the SHA-256 of the file's length and of every 1 MiB block (at its absolute
offset) that is not all zero: holes are skipped without reading them (lseek(2) ``SEEK_DATA``/
``SEEK_HOLE``, Linux and FreeBSD), zero blocks inside data are skipped too, so a hole on one
host and written zeros on the other give the same digest, and any changed byte a different
one. Both hosts compute it with this function; the prefix makes a peer with another digest
fail loudly ("checksum differs"), never pass silently."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import struct
from collections.abc import Callable
from pathlib import Path

from bhype_core.plugin_api import BLOCK_MANIFEST_DIR, BLOCKS_PREFIX, block_manifest_digest

CHUNK = 1 << 20


PREFIX = "sparse-sha256:"
ZERO = bytes(CHUNK)


def data_blocks(fd: int, size: int) -> list[int]:
    """Start offsets of the CHUNK-aligned blocks holding data (``SEEK_DATA``/``SEEK_HOLE``);
    every block when the file system cannot tell."""
    blocks: list[int] = []
    position = 0
    while position < size:
        try:
            start = os.lseek(fd, position, os.SEEK_DATA)
        except OSError as exc:
            if exc.errno == errno.ENXIO:  # no data after position
                break
            return list(range(0, size, CHUNK))  # EINVAL: no hole support here
        end = os.lseek(fd, start, os.SEEK_HOLE)
        block = start - start % CHUNK
        while block < end:
            if not blocks or blocks[-1] != block:
                blocks.append(block)
            block += CHUNK
        position = end
    return blocks


def sha256_file(path: Path, on_bytes: Callable[[int], None] | None = None) -> str:
    """The file's sparse-aware digest (see the module docstring), read without following a
    symlink."""
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise ValueError(f"{path} is not a regular file")
        digest.update(struct.pack(">Q", info.st_size))
        for offset in data_blocks(fd, info.st_size):
            chunk = os.pread(fd, CHUNK, offset)
            if chunk != ZERO[: len(chunk)]:
                digest.update(struct.pack(">QI", offset, len(chunk)))
                digest.update(chunk)
            if on_bytes is not None:
                on_bytes(len(chunk))
    finally:
        os.close(fd)
    return PREFIX + digest.hexdigest()


def regular_files(root: Path) -> list[str]:
    """Every regular file below ``root`` (relative, sorted), links and sockets left out."""
    found = []
    for directory, subdirs, names in os.walk(root, followlinks=False):
        subdirs[:] = [d for d in subdirs if not os.path.islink(os.path.join(directory, d))
                      and not (d == BLOCK_MANIFEST_DIR and directory == str(root))]  # a block copy's hashes
        for name in names:
            path = os.path.join(directory, name)
            if stat.S_ISREG(os.lstat(path).st_mode):
                found.append(os.path.relpath(path, root))
    return sorted(found)


def checksum_tree(root: Path, files: list[str], on_bytes: Callable[[int], None] | None = None,
                  expected: dict[str, str] | None = None) -> dict[str, str]:
    """``{relative path: sha256}`` of ``files`` under ``root``. A file whose ``expected``
    digest is a ``blocks-sha256:`` one (a dirty-block warm move, ``dirty_move.py``) gets its
    digest from the per-block hashes the block receiver kept while writing it (read back after
    each write) instead of reading it all again; no such record: ``"no block hashes"``."""
    sums = {}
    for name in files:
        if (expected or {}).get(name, "").startswith(BLOCKS_PREFIX):
            sums[name] = block_manifest_digest(root / name) or "no block hashes"
        else:
            sums[name] = sha256_file(root / name, on_bytes)
    return sums


def mismatches(expected: dict[str, str], actual: dict[str, str]) -> list[str]:
    """What differs between two checksum maps, one line each (empty when they agree)."""
    problems = [f"{name}: missing" for name in sorted(set(expected) - set(actual))]
    problems += [f"{name}: unexpected file" for name in sorted(set(actual) - set(expected))]
    problems += [f"{name}: checksum differs" for name in sorted(set(expected) & set(actual))
                 if expected[name] != actual[name]]
    return problems
