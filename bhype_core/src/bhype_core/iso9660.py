"""A small pure-Python ISO 9660 writer (one flat directory, Rock Ridge and Joliet names).

Enough for cloud-init NoCloud seeds and similar small images, with no ``genisoimage``/
``makefs`` on the host. Layout and field offsets follow ECMA-119 (ISO 9660): 16 empty system
sectors, the primary volume descriptor (PVD), a Joliet supplementary descriptor (escape
``%/E``, UCS-2 level 3), the terminator, then path tables, directories and file data.

Why both extensions: plain ISO 9660 names are upper-case 8.3/31-character d-characters
(``USER_DATA.;1``), but cloud-init opens ``user-data``, ``meta-data`` and ``network-config``
by exact name. Linux isofs and FreeBSD cd9660 read Rock Ridge ``NM`` names first (IEEE P1282,
signalled by SUSP ``SP``/``ER`` in the root's ``.`` record); Windows reads Joliet. Linux
isofs only prefers Rock Ridge over Joliet when it finds the ``ER`` entry, which does not fit
in a 255-byte directory record, so it lives in a continuation sector (SUSP ``CE``).
"""

from __future__ import annotations

import re
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

SECTOR = 2048
SYSTEM_AREA_SECTORS = 16
# mkisofs/genisoimage pad every image with 150 zero sectors (300 KiB; their -pad default, for
# Linux read-ahead past the end). Probers expect it: busybox volume_id (findfs/blkid) reads
# 0x11000 bytes at once and recognises no file system on a smaller device.
PAD_SECTORS = 150
MAX_FILES = 64  # keeps the one directory in a handful of sectors; a seed has three files
MAX_NAME = 64  # Joliet allows 64 UCS-2 characters per name
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
LABEL_RE = re.compile(r"^[A-Za-z0-9_-]{1,16}$")

# Rock Ridge extension reference (RRIP 1.10, as mkisofs/genisoimage write it).
RR_ID = b"RRIP_1991A"
RR_DESCRIPTOR = b"THE ROCK RIDGE INTERCHANGE PROTOCOL PROVIDES SUPPORT FOR POSIX FILE SYSTEM SEMANTICS"
RR_SOURCE = b"PLEASE CONTACT DISC PUBLISHER FOR SPECIFICATION SOURCE.  SEE PUBLISHER IDENTIFIER IN PRIMARY VOLUME DESCRIPTOR FOR CONTACT INFORMATION."  # noqa: E501
DIR_MODE = 0o040555
FILE_MODE = 0o100444


class IsoError(ValueError):
    """The requested image cannot be written (bad label or file name, too many files)."""


def both16(value: int) -> bytes:
    """ECMA-119 7.2.3: a 16-bit number little-endian then big-endian."""
    return struct.pack("<H", value) + struct.pack(">H", value)


def both32(value: int) -> bytes:
    """ECMA-119 7.3.3: a 32-bit number little-endian then big-endian."""
    return struct.pack("<I", value) + struct.pack(">I", value)


def _sectors(size: int) -> int:
    return max(1, -(-size // SECTOR))


def _record_date(when: datetime) -> bytes:
    # ECMA-119 9.1.5: years since 1900, month, day, hour, minute, second, GMT offset (15 min).
    t = when.astimezone(UTC)
    return bytes([t.year - 1900, t.month, t.day, t.hour, t.minute, t.second, 0])


def _volume_date(when: datetime | None) -> bytes:
    # ECMA-119 8.4.26.1: "YYYYMMDDHHMMSScc" digits plus a GMT offset byte; all zero = unset.
    if when is None:
        return b"0" * 16 + b"\0"
    t = when.astimezone(UTC)
    return t.strftime("%Y%m%d%H%M%S").encode() + b"00\0"


def _text(value: str, length: int, joliet: bool) -> bytes:
    if joliet:
        data = value.encode("utf-16-be")[: length - length % 2]
        data += " ".encode("utf-16-be") * ((length - len(data)) // 2)
        return data.ljust(length, b"\0")  # 37-byte fields end with one zero byte
    return value.encode("ascii")[:length].ljust(length, b" ")


def iso_name(name: str, taken: set[str]) -> str:
    """The ISO 9660 level 2 identifier (``USER_DATA.;1``) for ``name``, unique among ``taken``."""
    stem, dot, ext = name.upper().rpartition(".") if "." in name else (name.upper(), "", "")
    stem = re.sub(r"[^A-Z0-9_]", "_", stem)[:24] or "_"
    ext = re.sub(r"[^A-Z0-9_]", "_", ext)[:4]
    candidate, n = f"{stem}.{ext};1", 1
    while candidate in taken:
        suffix = f"_{n}"
        candidate, n = f"{stem[: 24 - len(suffix)]}{suffix}.{ext};1", n + 1
    return candidate


@dataclass(frozen=True)
class _Entry:
    name: str
    data: bytes
    iso_id: str
    extent: int = 0


class _Layout:
    """Where everything goes, in sectors (computed once, before anything is written)."""

    def __init__(self, files: list[_Entry]) -> None:
        self.pvd, self.svd, self.terminator = 16, 17, 18
        self.l_path, self.m_path, self.jl_path, self.jm_path = 19, 20, 21, 22
        self.continuation = 23  # Rock Ridge ER entry (SUSP CE target)
        self.root = 24
        self.root_sectors = _sectors(_dir_size(files, joliet=False))
        self.jroot = self.root + self.root_sectors
        self.jroot_sectors = _sectors(_dir_size(files, joliet=True))
        self.first_file = self.jroot + self.jroot_sectors


def _susp_root_dot(continuation: int) -> bytes:
    # SUSP SP (check bytes BE EF, skip 0) must come first; CE points at the ER entry.
    sp = b"SP" + bytes([7, 1, 0xBE, 0xEF, 0])
    ce = b"CE" + bytes([28, 1]) + both32(continuation) + both32(0) + both32(len(_er_entry()))
    return sp + ce + _px(DIR_MODE, 2)


def _er_entry() -> bytes:
    head = bytes([8 + len(RR_ID) + len(RR_DESCRIPTOR) + len(RR_SOURCE), 1])
    lengths = bytes([len(RR_ID), len(RR_DESCRIPTOR), len(RR_SOURCE), 1])
    return b"ER" + head + lengths + RR_ID + RR_DESCRIPTOR + RR_SOURCE


def _px(mode: int, links: int) -> bytes:
    # RRIP 1.10 PX: mode, links, uid, gid (root, read-only: the seed is never written).
    return b"PX" + bytes([36, 1]) + both32(mode) + both32(links) + both32(0) + both32(0)


def _nm(name: str) -> bytes:
    raw = name.encode("ascii")
    return b"NM" + bytes([5 + len(raw), 1, 0]) + raw


def _record(
    identifier: bytes, extent: int, size: int, directory: bool, when: datetime, system_use: bytes = b""
) -> bytes:
    # ECMA-119 9.1: a padding byte follows an even-length identifier so system use starts even.
    pad = b"\0" if len(identifier) % 2 == 0 else b""
    length = 33 + len(identifier) + len(pad) + len(system_use)
    if length % 2:
        system_use += b"\0"
        length += 1
    if length > 255:
        raise IsoError(f"directory record for {identifier!r} is too long ({length} bytes)")
    head = bytes([length, 0]) + both32(extent) + both32(size) + _record_date(when)
    head += bytes([2 if directory else 0, 0, 0]) + both16(1) + bytes([len(identifier)])
    return head + identifier + pad + system_use


def _file_identifier(entry: _Entry, joliet: bool) -> bytes:
    return entry.name.encode("utf-16-be") if joliet else entry.iso_id.encode("ascii")


def _dir_records(
    files: list[_Entry], joliet: bool, when: datetime, extent: int = 0, sectors: int = 1, continuation: int = 0
) -> list[bytes]:
    size = sectors * SECTOR
    dot_su = b"" if joliet else _susp_root_dot(continuation)
    dotdot_su = b"" if joliet else _px(DIR_MODE, 2)
    records = [_record(b"\0", extent, size, True, when, dot_su), _record(b"\1", extent, size, True, when, dotdot_su)]
    # ECMA-119 9.3: records sorted by identifier; Joliet sorts by its own (UCS-2) names.
    for entry in sorted(files, key=lambda e: _file_identifier(e, joliet)):
        system_use = b"" if joliet else _px(FILE_MODE, 1) + _nm(entry.name)
        records.append(_record(_file_identifier(entry, joliet), entry.extent, len(entry.data), False, when, system_use))
    return records


def _pack_sectors(records: list[bytes]) -> bytes:
    # A directory record never crosses a sector boundary (ECMA-119 6.8.1.1).
    out, current = [], b""
    for record in records:
        if len(current) + len(record) > SECTOR:
            out.append(current.ljust(SECTOR, b"\0"))
            current = b""
        current += record
    out.append(current.ljust(SECTOR, b"\0"))
    return b"".join(out)


def _dir_size(files: list[_Entry], joliet: bool) -> int:
    return len(_pack_sectors(_dir_records(files, joliet, datetime.now(UTC))))


def _path_table(extent: int, big_endian: bool) -> bytes:
    # ECMA-119 9.4: one record for the root (identifier 0x00, parent 1), padded to even length.
    fmt = ">IH" if big_endian else "<IH"
    return bytes([1, 0]) + struct.pack(fmt, extent, 1) + b"\0\0"


def _descriptor(kind: int, label: str, layout: _Layout, total: int, joliet: bool, when: datetime) -> bytes:
    root = layout.jroot if joliet else layout.root
    sectors = layout.jroot_sectors if joliet else layout.root_sectors
    l_path, m_path = (layout.jl_path, layout.jm_path) if joliet else (layout.l_path, layout.m_path)
    d = bytearray(SECTOR)
    d[0:7] = bytes([kind]) + b"CD001" + b"\1"
    d[8:40] = _text("", 32, joliet)  # system identifier
    d[40:72] = _text(label, 32, joliet)  # volume identifier: the label blkid/findfs report
    d[80:88] = both32(total)
    if joliet:
        d[88:91] = b"%/E"  # Joliet UCS-2 level 3
    d[120:124] = both16(1)
    d[124:128] = both16(1)
    d[128:132] = both16(SECTOR)
    d[132:140] = both32(len(_path_table(0, False)))
    d[140:144] = struct.pack("<I", l_path)
    d[148:152] = struct.pack(">I", m_path)
    d[156:190] = _record(b"\0", root, sectors * SECTOR, True, when)
    for start, length in ((190, 128), (318, 128), (446, 128)):
        d[start : start + length] = _text("", length, joliet)
    d[574:702] = _text("BHYPE", 128, joliet)  # application identifier
    for start in (702, 739, 776):
        d[start : start + 37] = _text("", 37, joliet)
    d[813:830] = _volume_date(when)
    d[830:847] = _volume_date(when)
    d[847:864] = _volume_date(None)
    d[864:881] = _volume_date(None)
    d[881] = 1  # file structure version
    return bytes(d)


def build_iso(files: Mapping[str, bytes], label: str, when: datetime | None = None) -> bytes:
    """An ISO 9660 image holding ``files`` (name → content) in its root directory.

    :param label: volume identifier (``cidata`` for NoCloud), at most 16 letters, digits,
        ``_`` or ``-``; written as given in both descriptors, as genisoimage ``-V`` does.
    :param when: timestamp of every record (default now); fix it for reproducible images.
    :raises IsoError: bad label, bad or duplicate names, too many files.
    """
    when = when or datetime.now(UTC)
    if not LABEL_RE.match(label):
        raise IsoError(f"label {label!r}: 1-16 letters, digits, '_' or '-'")
    if len(files) > MAX_FILES:
        raise IsoError(f"at most {MAX_FILES} files, not {len(files)}")
    entries: list[_Entry] = []
    taken: set[str] = set()
    for name in sorted(files):
        if not NAME_RE.match(name) or len(name) > MAX_NAME:
            raise IsoError(f"file name {name!r}: 1-{MAX_NAME} letters, digits, '.', '_' or '-'")
        iso_id = iso_name(name, taken)
        taken.add(iso_id)
        entries.append(_Entry(name, bytes(files[name]), iso_id))
    layout = _Layout(entries)
    placed, extent = [], layout.first_file
    for entry in entries:
        # Empty files point at extent 0 with size 0, as mkisofs writes them.
        placed.append(_Entry(entry.name, entry.data, entry.iso_id, extent if entry.data else 0))
        extent += _sectors(len(entry.data)) if entry.data else 0
    total = extent + PAD_SECTORS
    image = bytearray(SYSTEM_AREA_SECTORS * SECTOR)
    image += _descriptor(1, label, layout, total, False, when)
    image += _descriptor(2, label, layout, total, True, when)
    image += (bytes([255]) + b"CD001\1").ljust(SECTOR, b"\0")
    for extent_of, big in ((layout.root, False), (layout.root, True), (layout.jroot, False), (layout.jroot, True)):
        image += _path_table(extent_of, big).ljust(SECTOR, b"\0")
    image += _er_entry().ljust(SECTOR, b"\0")
    image += _pack_sectors(_dir_records(placed, False, when, layout.root, layout.root_sectors, layout.continuation))
    image += _pack_sectors(_dir_records(placed, True, when, layout.jroot, layout.jroot_sectors))
    for entry in placed:
        if entry.data:
            image += entry.data.ljust(_sectors(len(entry.data)) * SECTOR, b"\0")
    image += bytes(PAD_SECTORS * SECTOR)
    if len(image) != total * SECTOR:
        raise AssertionError(f"ISO layout mismatch: {len(image)} bytes for {total} sectors")
    return bytes(image)
