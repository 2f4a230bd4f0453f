"""Checksum files as distributions publish them, and digests of downloaded files.

A pure parser for the two line formats every distribution uses (issue 14):

* GNU coreutils (``sha256sum``/``sha512sum``, coreutils manual "md5sum invocation"):
  ``<hex><space><space or *><file name>``; ``*`` marks binary mode (Ubuntu's SHA256SUMS,
  Debian's SHA512SUMS, Alpine's per-file ``.sha512``). A name holding a backslash or newline
  is escaped and the line starts with ``\\``.
* BSD tagged (``sha256 -r`` absent; FreeBSD sha256(1)/sha512(1), also ``sha256sum --tag``):
  ``SHA256 (<file name>) = <hex>`` (Fedora's and Rocky's CHECKSUM, FreeBSD's CHECKSUM.SHA512,
  AlmaLinux's CHECKSUM).

Around the lines: ``#`` comments (Fedora and Rocky note sizes there), an OpenPGP clearsigned
wrapper (RFC 4880 section 7: ``-----BEGIN PGP SIGNED MESSAGE-----``, ``Hash:`` headers, the
signature block; dash-escaped lines start with ``- ``), blank lines. A file holding a single
bare hex digest (some per-file checksum files) names no file: it is the digest of the file it
sits beside. Only SHA-256 and SHA-512 are accepted: MD5 and SHA-1 prove nothing today.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from bhype_core.errors import BhypeError, ValidationErrors

ALGORITHMS = {"sha256": 64, "sha512": 128}
WEAK = {32: "MD5", 40: "SHA-1"}
_GNU = re.compile(r"^(\\?)([0-9A-Fa-f]{32,128}) [ *](.+)$")
_BSD = re.compile(r"^([A-Za-z0-9-]+) \((.+)\) ?= ?([0-9A-Fa-f]{32,128})$")
_BARE = re.compile(r"^([0-9A-Fa-f]{64}|[0-9A-Fa-f]{128})$")
CHUNK = 1 << 20


class ChecksumError(BhypeError):
    """A checksum file that does not give a usable digest for the wanted file."""

    code = "checksum_file"
    http_status = 502


@dataclass(frozen=True)
class Checksum:
    """One file's digest: ``algorithm`` (``sha256``/``sha512``), lower-case ``hex``, ``name``
    (``None`` for a bare digest)."""

    algorithm: str
    hex: str
    name: str | None = None


def _unescape(name: str) -> str:
    # coreutils escapes "\\" as "\\\\" and newline as "\\n" when the line starts with "\\".
    return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), name)


def _algorithm(hex_digits: str, tag: str | None = None) -> str | None:
    """The algorithm of a digest: the BSD tag if given (must fit the length), else the length."""
    by_length = next((name for name, size in ALGORITHMS.items() if size == len(hex_digits)), None)
    if tag is None:
        return by_length
    named = tag.lower().replace("-", "")
    return named if named in ALGORITHMS and ALGORITHMS[named] == len(hex_digits) else None


def _payload(text: str) -> Iterable[str]:
    """The lines of ``text`` without an OpenPGP clearsign wrapper (RFC 4880 section 7)."""
    lines = text.replace("\r\n", "\n").split("\n")
    if not any(line.strip() == "-----BEGIN PGP SIGNED MESSAGE-----" for line in lines):
        yield from lines
        return
    state = "before"
    for line in lines:
        stripped = line.strip()
        if state == "before":
            if stripped == "-----BEGIN PGP SIGNED MESSAGE-----":
                state = "headers"
        elif state == "headers":
            if not stripped:
                state = "body"
        elif stripped == "-----BEGIN PGP SIGNATURE-----":
            return
        else:
            yield line[2:] if line.startswith("- ") else line


def parse_checksum_file(text: str) -> list[Checksum]:
    """Every SHA-256/SHA-512 line of a checksum file in GNU or BSD-tagged format.

    Lines in neither format, comments and weak digests (MD5, SHA-1) are skipped; a lone bare
    digest is returned with ``name=None``.
    """
    entries: list[Checksum] = []
    for raw in _payload(text):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if match := _BSD.match(line):
            algorithm = _algorithm(match.group(3), match.group(1))
            if algorithm:
                entries.append(Checksum(algorithm, match.group(3).lower(), match.group(2)))
        elif match := _GNU.match(line):
            algorithm = _algorithm(match.group(2))
            name = _unescape(match.group(3)) if match.group(1) else match.group(3)
            if algorithm:
                entries.append(Checksum(algorithm, match.group(2).lower(), name))
        elif match := _BARE.match(line):
            entries.append(Checksum(_algorithm(match.group(1)) or "", match.group(1).lower()))
    return entries


def find_checksum(text: str, file_name: str, source: str = "the checksum file") -> Checksum:
    """The digest ``text`` gives for ``file_name`` (the strongest if it gives several).

    A file with a single bare digest answers for any name.

    :raises ChecksumError: no line for the file (naming the names it does list), only a weak
        digest, or two different digests of one algorithm.
    """
    entries = parse_checksum_file(text)
    named = [e for e in entries if e.name is not None and e.name.lstrip("./") == file_name]
    if not named:
        bare = [e for e in entries if e.name is None]
        if len(bare) == 1 and len(entries) == 1:
            return Checksum(bare[0].algorithm, bare[0].hex, file_name)
        if re.search(rf"(^|[\s(*]){re.escape(file_name)}(\)|\s*$)", text, re.MULTILINE):
            weak = re.search(r"\b([0-9A-Fa-f]{32}|[0-9A-Fa-f]{40})\b", text)
            kind = WEAK.get(len(weak.group(1)), "a weak") if weak else "an unknown"
            raise ChecksumError(f"{source} gives only {kind} digest for {file_name}; SHA-256 or SHA-512 needed")
        listed = ", ".join(sorted({e.name for e in entries if e.name})[:5]) or "no SHA-256/SHA-512 lines"
        raise ChecksumError(f"{source} has no line for {file_name} (it lists: {listed})")
    for algorithm in ("sha512", "sha256"):
        digests = {e.hex for e in named if e.algorithm == algorithm}
        if len(digests) > 1:
            raise ChecksumError(f"{source} gives {file_name} two different {algorithm.upper()} digests")
        if digests:
            return Checksum(algorithm, digests.pop(), file_name)
    raise ChecksumError(f"{source} has no SHA-256/SHA-512 line for {file_name}")  # pragma: no cover


def check_digest(value: object, algorithm: str, field: str) -> str | None:
    """A hex digest of ``algorithm`` as given by a caller (any case; ``None``/``""`` = not given).

    :raises ValidationErrors: naming ``field``.
    """
    if value is None or value == "":
        return None
    size = ALGORITHMS[algorithm]
    if not isinstance(value, str) or not re.fullmatch(rf"[0-9A-Fa-f]{{{size}}}", value):
        raise ValidationErrors([(field, f"must be {size} hexadecimal digits (a {algorithm.upper()})")])
    return value.lower()


def file_digests(path: Path, algorithms: Iterable[str] = ("sha256",),
                 progress: Callable[[int], None] | None = None) -> dict[str, str]:
    """The hex digests of ``path`` for each of ``algorithms``, in one read of the file."""
    from bhype_core.safe_files import open_regular

    digests = {name: hashlib.new(name) for name in algorithms}
    done = 0
    with os.fdopen(open_regular(path), "rb") as handle:  # never a planted link or FIFO
        while chunk := handle.read(CHUNK):
            for digest in digests.values():
                digest.update(chunk)
            done += len(chunk)
            if progress:
                progress(done)
    return {name: digest.hexdigest() for name, digest in digests.items()}
