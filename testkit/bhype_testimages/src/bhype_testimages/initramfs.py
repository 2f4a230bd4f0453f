"""Initramfs building blocks for test guests: a newc cpio writer, kernel module and library closures.

The archive format is the "new ASCII" (newc) cpio format the kernel unpacks
(``Documentation/driver-api/early-userspace/buffer-format.rst``): a 110-byte header of
``070701`` and thirteen 8-digit hex fields, the NUL-terminated name padded to 4 bytes, then
the data padded to 4 bytes, ending with an entry named ``TRAILER!!!``.
"""

from __future__ import annotations

import gzip
import os
import re
import shutil
import stat
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Protocol

from bhype_core.host.runner import LocalRunner


class _Writable(Protocol):
    def write(self, data: bytes, /) -> object: ...


@dataclass(frozen=True)
class _Entry:
    mode: int
    data: bytes | None = None
    source: Path | None = None
    rdev: tuple[int, int] = (0, 0)


class Initramfs:
    """An in-memory list of guest files, written out as a (compressed) newc cpio archive.

    Paths are guest paths (``/bin/sh`` or ``bin/sh``); parent directories are added
    automatically. Entries are written in sorted order with mtime 0 and uid/gid 0, so the same
    inputs always give the same archive (the cache key can rely on that).
    """

    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}

    def __contains__(self, path: str) -> bool:
        return _norm(path) in self._entries

    def add_dir(self, path: str, mode: int = 0o755) -> None:
        """Add a directory (and its parents)."""
        name = _norm(path)
        if not name:
            return
        self._parents(name)
        self._entries.setdefault(name, _Entry(stat.S_IFDIR | mode))

    def add_data(self, path: str, data: str | bytes, mode: int = 0o644) -> None:
        """Add a regular file with the given content (``str`` is written as UTF-8)."""
        name = _norm(path)
        self._parents(name)
        payload = data.encode() if isinstance(data, str) else data
        self._entries[name] = _Entry(stat.S_IFREG | mode, data=payload)

    def add_file(self, path: str, source: Path, mode: int | None = None) -> None:
        """Add a copy of the host file ``source`` (its permission bits unless ``mode`` is given)."""
        name = _norm(path)
        self._parents(name)
        bits = stat.S_IMODE(source.stat().st_mode) if mode is None else mode
        self._entries[name] = _Entry(stat.S_IFREG | bits, source=source)

    def add_symlink(self, path: str, target: str) -> None:
        """Add a symbolic link ``path`` pointing at ``target``."""
        name = _norm(path)
        self._parents(name)
        self._entries[name] = _Entry(stat.S_IFLNK | 0o777, data=target.encode())

    def add_char_device(self, path: str, major: int, minor: int, mode: int = 0o600) -> None:
        """Add a character device node (the kernel needs ``/dev/console`` before devtmpfs)."""
        name = _norm(path)
        self._parents(name)
        self._entries[name] = _Entry(stat.S_IFCHR | mode, rdev=(major, minor))

    def write(self, dest: Path, compression: str = "gzip") -> None:
        """Write the archive to ``dest``, compressed with ``gzip`` or ``zstd`` (both built into
        Debian's kernels: ``CONFIG_RD_GZIP``/``CONFIG_RD_ZSTD``)."""
        if compression == "gzip":
            with gzip.GzipFile(dest, "wb", compresslevel=6, mtime=0) as out:
                self._write_cpio(out)
        elif compression == "zstd":
            raw = dest.with_name(dest.name + ".cpio")
            with raw.open("wb") as out:
                self._write_cpio(out)
            # -T0: all cores; the guest kernel decompresses it once per boot.
            LocalRunner().run(["zstd", "-q", "-f", "-T0", "-9", str(raw), "-o", str(dest)], timeout=600)
            raw.unlink()
        else:
            raise ValueError(f"compression must be 'gzip' or 'zstd', not {compression!r}")

    def _parents(self, name: str) -> None:
        parent = str(PurePosixPath(name).parent)
        if parent not in (".", "") and parent not in self._entries:
            self.add_dir(parent)

    def _write_cpio(self, out: _Writable) -> None:
        for inode, name in enumerate(sorted(self._entries), start=1):
            entry = self._entries[name]
            size = entry.source.stat().st_size if entry.source is not None else len(entry.data or b"")
            nlink = 2 if stat.S_ISDIR(entry.mode) else 1
            _write_header(out, name, inode, entry.mode, nlink, size, entry.rdev)
            if entry.source is not None:
                with entry.source.open("rb") as src:
                    shutil.copyfileobj(src, out, 1 << 20)
            elif entry.data:
                out.write(entry.data)
            out.write(b"\0" * (-size % 4))
        _write_header(out, "TRAILER!!!", 0, 0, 1, 0, (0, 0))


def _norm(path: str) -> str:
    name = str(PurePosixPath("/", path)).lstrip("/")
    if ".." in PurePosixPath(name).parts:
        raise ValueError(f"guest path must not contain '..': {path!r}")
    return name


def _write_header(
    out: _Writable, name: str, ino: int, mode: int, nlink: int, size: int, rdev: tuple[int, int]
) -> None:
    encoded = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, nlink, 0, size, 0, 0, rdev[0], rdev[1], len(encoded), 0)
    header = b"070701" + b"".join(b"%08X" % value for value in fields)
    out.write(header + encoded + b"\0" * (-(len(header) + len(encoded)) % 4))


# --- kernel modules -------------------------------------------------------------------------

_DEPENDS = re.compile(rb"(?:^|\0)depends=([^\0]*)\0")


def module_depends(ko: Path) -> list[str]:
    """The ``depends=`` list of a kernel module's ``.modinfo`` section (what modinfo(8) shows),
    read straight from the ``.ko`` file so no ``modules.dep`` (made by depmod at install time,
    absent from ``dpkg -x`` trees) is needed."""
    match = _DEPENDS.search(ko.read_bytes())
    if match is None or not match.group(1):
        return []
    return [name.decode() for name in match.group(1).split(b",") if name]


def module_index(roots: Iterable[Path]) -> dict[str, Path]:
    """Map module names (``-`` read as ``_``, as the kernel does) to ``.ko`` files under ``roots``."""
    index: dict[str, Path] = {}
    for root in roots:
        for ko in sorted(root.rglob("*.ko")):
            index.setdefault(ko.name[: -len(".ko")].replace("-", "_"), ko)
    return index


def module_closure(index: dict[str, Path], wanted: Sequence[str]) -> list[Path]:
    """The ``.ko`` files for ``wanted`` and everything they depend on, in a valid load order
    (dependencies first).

    :raises LookupError: a wanted module or a dependency is not in ``index`` (it may be built
        into the kernel: then leave it out of ``wanted``).
    """
    order: list[Path] = []
    seen: set[str] = set()

    def visit(name: str, chain: tuple[str, ...]) -> None:
        key = name.replace("-", "_")
        if key in seen:
            return
        if key not in index:
            via = " <- ".join(chain) if chain else "requested"
            raise LookupError(f"kernel module {key} not found ({via})")
        seen.add(key)
        for dependency in module_depends(index[key]):
            visit(dependency, (*chain, key))
        order.append(index[key])

    for name in wanted:
        visit(name, ())
    return order


# --- shared libraries -----------------------------------------------------------------------

_LIST_LINE = re.compile(r"^\s*(\S+)(?: => (\S+|not found))?(?: \(0x[0-9a-f]+\))?\s*$")


def parse_ldso_list(text: str) -> tuple[list[str], list[str]]:
    """Parse ``ld.so --list`` (ldd(1) format) output into (resolved paths, missing sonames).

    Lines look like ``libz.so.1 => /lib/x86_64-linux-gnu/libz.so.1 (0x...)``,
    ``/lib64/ld-linux-x86-64.so.2 (0x...)``, ``linux-vdso.so.1 (0x...)`` (kernel-provided,
    skipped) or ``libfoo.so.1 => not found``.
    """
    found: list[str] = []
    missing: list[str] = []
    for line in text.splitlines():
        match = _LIST_LINE.match(line)
        if not match:
            continue
        name, target = match.group(1), match.group(2)
        if target == "not found":
            missing.append(name)
        elif target:
            found.append(target)
        elif name.startswith("/"):
            found.append(name)
    return found, missing


def library_closure(root: Path, binaries: Sequence[Path], library_dirs: Sequence[str]) -> list[Path]:
    """Shared libraries (files under ``root``) that ``binaries`` need, resolved by ``root``'s
    own dynamic loader (``ld.so --list --library-path``), never by the machine's libraries.

    :raises LookupError: a library is missing or would come from outside ``root``.
    """
    loader = root / "lib/x86_64-linux-gnu/ld-linux-x86-64.so.2"
    search = ":".join(str(root / d) for d in library_dirs)
    runner = LocalRunner()
    libraries: dict[Path, None] = {}
    for binary in binaries:
        result = runner.run([str(loader), "--list", "--library-path", search, str(binary)], timeout=60)
        found, missing = parse_ldso_list(result.stdout)
        if missing:
            raise LookupError(f"{binary.name}: libraries not found in the extracted packages: {missing}")
        for path in found:
            resolved = Path(os.path.normpath(path))
            if resolved.name.startswith("ld-linux"):
                continue  # the loader is added by the caller at its ABI path
            if root not in resolved.parents:
                raise LookupError(f"{binary.name}: {path} comes from the machine, not the extracted packages")
            libraries[resolved] = None
    return list(libraries)
