"""Read the PNG screenshots QEMU's ``screendump`` writes, to tell a blank screen from text.

Decoding follows the PNG specification (ISO/IEC 15948, sections 7-9): chunks after the
8-byte signature, IHDR first, the zlib stream split over IDAT chunks, one filter-type byte
before every scanline (None, Sub, Up, Average, Paeth). Only 8-bit greyscale/RGB/RGBA without
interlacing is handled, which is what QEMU writes.
"""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type -> samples per pixel


@dataclass(frozen=True)
class Picture:
    """Decoded pixels: ``rows`` of raw bytes, ``channels`` bytes per pixel."""

    width: int
    height: int
    channels: int
    rows: list[bytes]

    def colours(self) -> set[bytes]:
        """The distinct pixel values (one colour means a blank screen)."""
        step = self.channels
        return {row[i : i + step] for row in self.rows for i in range(0, len(row), step)}


def read_png(path: Path) -> Picture:
    """Decode an 8-bit, non-interlaced PNG file.

    :raises ValueError: not a PNG, or a variant this reader does not handle.
    """
    data = path.read_bytes()
    if not data.startswith(SIGNATURE):
        raise ValueError(f"{path} is not a PNG file")
    offset, header, idat = len(SIGNATURE), None, []
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        offset += 12 + length
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", body)
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    if header is None:
        raise ValueError(f"{path}: no IHDR chunk")
    width, height, depth, colour_type, _, _, interlace = header
    if depth != 8 or interlace != 0 or colour_type not in _CHANNELS:
        details = f"depth {depth}, colour type {colour_type}, interlace {interlace}"
        raise ValueError(f"{path}: unsupported PNG ({details})")
    channels = _CHANNELS[colour_type]
    raw = zlib.decompress(b"".join(idat))
    stride = width * channels
    rows: list[bytes] = []
    previous = bytes(stride)
    for y in range(height):
        start = y * (stride + 1)
        row = _unfilter(raw[start], bytearray(raw[start + 1 : start + 1 + stride]), previous, channels)
        rows.append(row)
        previous = row
    return Picture(width, height, channels, rows)


def _unfilter(kind: int, row: bytearray, previous: bytes, bpp: int) -> bytes:
    for i in range(len(row)):
        left = row[i - bpp] if i >= bpp else 0
        up = previous[i]
        if kind == 1:
            row[i] = (row[i] + left) & 0xFF
        elif kind == 2:
            row[i] = (row[i] + up) & 0xFF
        elif kind == 3:
            row[i] = (row[i] + ((left + up) >> 1)) & 0xFF
        elif kind == 4:
            corner = previous[i - bpp] if i >= bpp else 0
            row[i] = (row[i] + _paeth(left, up, corner)) & 0xFF
        elif kind != 0:
            raise ValueError(f"unknown PNG filter type {kind}")
    return bytes(row)


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    if pa <= pb and pa <= pc:
        return a
    return b if pb <= pc else c
