"""The backup manifest (format version 1): what a point holds and how to check it.

Written last, atomically (a local file rsync'ed into the point without ``--inplace``, so the
receiver renames it into place), as ``manifest.json``. Its presence and the point row's
``complete`` flag are what make a point a backup. bak2's ``backup.verify`` re-reads the files
and compares them with ``files[*].chunks`` (sha256 per fixed-size chunk) and ``sha256``.

Top level: ``format`` (``"bhype-backup"``), ``version`` (1), ``vm`` (``name``, ``uuid``,
``owner``, ``datastore``), ``spec`` (the VM spec), ``mode`` (``snapshot``/``stop``/``crash``),
``consistency`` (what that gave: ``"consistent"`` or ``"crash-consistent"``), ``stop_window``
(``stopped_at``/``started_at``/``seconds`` for ``stop``), ``source_host``, ``bhype_version``,
``plugin_version``, ``started``/``finished`` (UTC ISO 8601), ``chunk_size``, ``basis`` (the
earlier point used for the delta, or null), ``windows`` (the target's flag), ``warnings`` and
``files``: one entry per file with ``role`` (``disk``/``config``), ``volume`` (disks),
``original`` (the name in the VM directory), ``stored`` (the path in the point, safe
alphabet), ``size``, ``allocated`` (bytes on disk: sparseness), ``mode`` (permissions,
octal text), ``mtime`` (seconds), ``sha256`` and ``chunks``.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

FORMAT = "bhype-backup"
VERSION = 1
CHUNK_SIZE = 4 * 2**20


@dataclass
class FileEntry:
    """One file of a point."""

    role: str
    original: str
    stored: str
    size: int
    allocated: int
    mode: str
    mtime: float
    sha256: str
    chunks: list[str]
    volume: str | None = None


@dataclass
class Manifest:
    """A point's manifest (see the module docstring for every field)."""

    vm: dict[str, Any]
    spec: dict[str, Any]
    mode: str
    consistency: str
    source_host: str
    bhype_version: str
    plugin_version: str
    started: str
    finished: str = ""
    chunk_size: int = CHUNK_SIZE
    basis: str | None = None
    windows: bool = False
    stop_window: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    files: list[FileEntry] = field(default_factory=list)
    format: str = FORMAT
    version: int = VERSION

    def to_json(self) -> bytes:
        """Canonical JSON (sorted keys), the bytes whose sha256 the point row records."""
        return json.dumps(asdict(self), sort_keys=True, indent=1).encode()

    @property
    def size(self) -> int:
        """Bytes of data in the point."""
        return sum(entry.size for entry in self.files)


def hash_file(path: Path, chunk_size: int = CHUNK_SIZE) -> tuple[str, list[str]]:
    """The whole file's sha256 and the sha256 of each ``chunk_size`` piece, read once."""
    whole = hashlib.sha256()
    chunks: list[str] = []
    with path.open("rb") as handle:
        while block := handle.read(chunk_size):
            whole.update(block)
            chunks.append(hashlib.sha256(block).hexdigest())
    return whole.hexdigest(), chunks


def describe_file(path: Path, role: str, original: str, stored: str, volume: str | None = None) -> FileEntry:
    """Size, allocation, permissions, time and checksums of ``path`` (not followed)."""
    info = os.lstat(path)
    if not stat.S_ISREG(info.st_mode):
        raise ValueError(f"{path} is not a regular file")
    digest, chunks = hash_file(path)
    return FileEntry(role=role, original=original, stored=stored, size=info.st_size,
                     allocated=info.st_blocks * 512, mode=f"{stat.S_IMODE(info.st_mode):04o}",
                     mtime=info.st_mtime, sha256=digest, chunks=chunks, volume=volume)


def parse_manifest(data: bytes) -> Manifest:
    """A manifest read back from a target.

    :raises ValueError: not a bHype manifest, or a version this code does not know."""
    try:
        raw = json.loads(data)
    except json.JSONDecodeError as exc:
        raise ValueError(f"the manifest is not JSON: {exc}") from None
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ValueError("not a bHype backup manifest")
    if raw.get("version") != VERSION:
        raise ValueError(f"manifest version {raw.get('version')!r} is not supported (this bHype reads {VERSION})")
    files = [FileEntry(**entry) for entry in raw.pop("files", [])]
    return Manifest(**{**raw, "files": files})


def check_file(path: Path, entry: FileEntry, chunk_size: int = CHUNK_SIZE) -> list[int]:
    """Indexes of the chunks of ``path`` that do not match ``entry`` (a size mismatch counts
    every missing or extra chunk); empty when the file is bit-identical."""
    digest, chunks = hash_file(path, chunk_size)
    if digest == entry.sha256 and len(chunks) == len(entry.chunks):
        return []
    width = max(len(chunks), len(entry.chunks))
    return [i for i in range(width) if i >= len(chunks) or i >= len(entry.chunks) or chunks[i] != entry.chunks[i]]
