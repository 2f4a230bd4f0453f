"""Test helper: a lossless Tight decoder (what noVNC core/decoders/tight.js does), to check that
every viewer of the multiplexer sees the screen the VNC server has."""

from __future__ import annotations

import struct
import zlib

from bhype_webui import rfb


class TightDecoder:
    """Lossless Tight (fill, copy, palette, gradient; 32-bit pixels, 3-byte TPIXELs) into an
    RGB framebuffer, with noVNC's four zlib streams and their reset bits."""

    def __init__(self, width: int, height: int) -> None:
        self.width, self.height = width, height
        self.fb = bytearray(width * height * 3)
        self.zlibs = [zlib.decompressobj() for _ in range(4)]

    def put(self, x: int, y: int, w: int, h: int, rgb: bytes) -> None:
        for row in range(h):
            start = ((y + row) * self.width + x) * 3
            self.fb[start:start + w * 3] = rgb[row * w * 3:(row + 1) * w * 3]

    def raw(self, x: int, y: int, w: int, h: int, data: memoryview) -> None:
        pixels = bytes(data)  # little-endian 32-bit: R, G, B, pad
        rgb = bytearray(w * h * 3)
        rgb[0::3], rgb[1::3], rgb[2::3] = pixels[0::4], pixels[1::4], pixels[2::4]
        self.put(x, y, w, h, bytes(rgb))

    def message(self, data: bytes) -> int:
        """Apply one FramebufferUpdate; returns its length."""
        view, pos = memoryview(data), 4
        (count,) = struct.unpack_from(">H", data, 2)
        for _ in range(count):
            x, y, w, h, encoding = struct.unpack_from(">HHHHi", data, pos)
            pos += 12
            if encoding == rfb.PSEUDO_LAST_RECT:
                break
            if encoding == rfb.ENCODING_RAW:
                self.raw(x, y, w, h, view[pos:pos + w * h * 4])
                pos += w * h * 4
            elif encoding == rfb.ENCODING_TIGHT:
                pos = self.tight(x, y, w, h, data, pos)
            elif encoding < 0:
                continue
            else:
                raise ValueError(f"unexpected encoding {encoding}")
        return pos

    def _length(self, data: bytes, pos: int) -> tuple[int, int]:
        length, shift = 0, 0
        for i in range(3):
            byte = data[pos + i]
            length |= (byte & (0x7F if i < 2 else 0xFF)) << shift
            shift += 7
            if i == 2 or not byte & 0x80:
                return length, pos + i + 1
        raise AssertionError

    def tight(self, x: int, y: int, w: int, h: int, data: bytes, pos: int) -> int:
        ctl = data[pos]
        pos += 1
        for stream in range(4):
            if ctl >> stream & 1:
                self.zlibs[stream] = zlib.decompressobj()
        kind = ctl >> 4
        if kind == 8:
            self.put(x, y, w, h, bytes(data[pos:pos + 3]) * (w * h))
            return pos + 3
        if kind > 8:
            raise ValueError("JPEG was not asked for")
        filter_id, palette = 0, b""
        if kind & 4:
            filter_id = data[pos]
            pos += 1
        row = w * 3
        if filter_id == 1:
            colours = data[pos] + 1
            palette = bytes(data[pos + 1:pos + 1 + 3 * colours])
            pos += 1 + 3 * colours
            row = (w + 7) // 8 if colours == 2 else w
        size = row * h
        if size < 12:
            body = bytes(data[pos:pos + size])
            pos += size
        else:
            length, pos = self._length(data, pos)
            body = self.zlibs[kind & 3].decompress(bytes(data[pos:pos + length]))
            pos += length
        if filter_id == 1:
            rgb = bytearray()
            for r in range(h):
                for c in range(w):
                    if len(palette) == 6:
                        index = body[r * row + c // 8] >> (7 - c % 8) & 1
                    else:
                        index = body[r * row + c]
                    rgb += palette[index * 3:index * 3 + 3]
            self.put(x, y, w, h, bytes(rgb))
        elif filter_id == 2:
            out = bytearray(w * h * 3)
            for r in range(h):
                for c in range(w):
                    for k in range(3):
                        left = out[(r * w + c - 1) * 3 + k] if c else 0
                        up = out[((r - 1) * w + c) * 3 + k] if r else 0
                        corner = out[((r - 1) * w + c - 1) * 3 + k] if r and c else 0
                        predicted = min(255, max(0, left + up - corner))
                        out[(r * w + c) * 3 + k] = (body[(r * w + c) * 3 + k] + predicted) & 0xFF
            self.put(x, y, w, h, bytes(out))
        else:
            self.put(x, y, w, h, body)
        return pos
