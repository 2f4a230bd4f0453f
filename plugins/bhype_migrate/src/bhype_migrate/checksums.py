"""SHA-256 of a VM's files, on the source before the transfer and on the target after it."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Callable
from pathlib import Path

CHUNK = 1 << 20


def sha256_file(path: Path, on_bytes: Callable[[int], None] | None = None) -> str:
    """The file's SHA-256 (hex), read without following a symlink."""
    digest = hashlib.sha256()
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ValueError(f"{path} is not a regular file")
        while chunk := os.read(fd, CHUNK):
            digest.update(chunk)
            if on_bytes is not None:
                on_bytes(len(chunk))
    finally:
        os.close(fd)
    return digest.hexdigest()


def regular_files(root: Path) -> list[str]:
    """Every regular file below ``root`` (relative, sorted), links and sockets left out."""
    found = []
    for directory, subdirs, names in os.walk(root, followlinks=False):
        subdirs[:] = [d for d in subdirs if not os.path.islink(os.path.join(directory, d))]
        for name in names:
            path = os.path.join(directory, name)
            if stat.S_ISREG(os.lstat(path).st_mode):
                found.append(os.path.relpath(path, root))
    return sorted(found)


def checksum_tree(root: Path, files: list[str], on_bytes: Callable[[int], None] | None = None) -> dict[str, str]:
    """``{relative path: sha256}`` of ``files`` under ``root``."""
    return {name: sha256_file(root / name, on_bytes) for name in files}


def mismatches(expected: dict[str, str], actual: dict[str, str]) -> list[str]:
    """What differs between two checksum maps, one line each (empty when they agree)."""
    problems = [f"{name}: missing" for name in sorted(set(expected) - set(actual))]
    problems += [f"{name}: unexpected file" for name in sorted(set(actual) - set(expected))]
    problems += [f"{name}: checksum differs" for name in sorted(set(expected) & set(actual))
                 if expected[name] != actual[name]]
    return problems
