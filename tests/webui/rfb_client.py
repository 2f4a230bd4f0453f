"""Test helper: a minimal RFB viewer over a WebSocket (what noVNC does, in Python) that keeps
a decoded framebuffer (raw, CopyRect, RRE, hextile and, when it announces it, Tight; 32-bit
pixels; RFC 6143 §7.7)."""

from __future__ import annotations

import asyncio
import struct

from tight_decoder import TightDecoder
from websockets.asyncio.client import ClientConnection, connect

from bhype_webui import rfb
from bhype_webui.rfb_tight import TightState
from bhype_webui.rfb_updates import read_server_message


class WsReader:
    """readexactly over WebSocket messages."""

    def __init__(self, ws: ClientConnection, tight: bool = False) -> None:
        self.ws = ws
        self.tight = tight
        self.tight_decoder: TightDecoder | None = None
        self.bytes_received = 0
        self.tight_rects = 0
        self.buffer = bytearray()

    async def readexactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            message = await self.ws.recv()
            self.buffer += message if isinstance(message, bytes) else message.encode()
        data, self.buffer = bytes(self.buffer[:size]), self.buffer[size:]
        return data


class Viewer:
    """One connected viewer with its own copy of the screen."""

    def __init__(self, ws: ClientConnection, tight: bool = False) -> None:
        self.ws = ws
        self.tight = tight
        self.tight_decoder: TightDecoder | None = None
        self.bytes_received = 0
        self.tight_rects = 0
        self.reader = WsReader(ws)
        self.width = self.height = 0
        self.name = ""
        self.pixels: list[bytes] = []
        self.updates = 0
        self.pseudo: set[int] = set()

    @classmethod
    async def open(cls, url: str, subprotocols: list[str] | None = None, tight: bool = False) -> Viewer:
        """Connect and greet; ``tight``: announce Tight first, as noVNC does."""
        ws = await connect(url, subprotocols=subprotocols, max_size=None, open_timeout=30)
        viewer = cls(ws, tight)
        await viewer.handshake()
        return viewer

    async def handshake(self) -> None:
        read = self.reader.readexactly
        assert rfb.parse_version(await read(12)) == (3, 8)
        await self.ws.send(rfb.VERSION_3_8)
        count = (await read(1))[0]
        assert list(await read(count)) == [rfb.SECURITY_NONE]
        await self.ws.send(bytes([rfb.SECURITY_NONE]))
        assert await read(4) == b"\x00\x00\x00\x00"
        await self.ws.send(b"\x01")
        self.width, self.height, fmt, name_length = rfb.ServerInit.unpack_head(await read(24))
        assert fmt == rfb.STANDARD_FORMAT
        self.name = (await read(name_length)).decode()
        self.pixels = [b"\x00\x00\x00\x00"] * (self.width * self.height)
        await self.ws.send(rfb.set_pixel_format(rfb.STANDARD_FORMAT))
        encodings = [rfb.ENCODING_HEXTILE, rfb.ENCODING_RAW, rfb.PSEUDO_DESKTOP_SIZE]
        if self.tight:
            encodings.insert(0, rfb.ENCODING_TIGHT)
            self.tight_decoder = TightDecoder(self.width, self.height)
        await self.ws.send(rfb.set_encodings(encodings))
        await self.ws.send(rfb.fb_update_request(False, 0, 0, self.width, self.height))

    async def next_update(self, timeout: float = 60) -> None:
        """Read messages until one framebuffer update has been applied."""
        while True:
            message = await asyncio.wait_for(
                read_server_message(self.reader.readexactly, 4, None, (3, TightState())), timeout
            )
            self.bytes_received += len(message.data)
            if message.kind == rfb.SERVER_FB_UPDATE:
                self.apply(message.data)
                self.updates += 1
                return

    def colours(self) -> set[bytes]:
        return set(self.pixels)

    async def key(self, keysym: int) -> None:
        await self.ws.send(rfb.key_event(True, keysym) + rfb.key_event(False, keysym))

    async def type(self, text: str) -> None:
        """Type lower-case letters, digits and spaces (their keysyms are their ASCII codes)."""
        for char in text:
            await self.key(0xFF0D if char == "\n" else ord(char))

    async def close(self) -> None:
        await self.ws.close()

    # -- decoding -------------------------------------------------------------------------------

    def fill(self, x: int, y: int, w: int, h: int, pixel: bytes) -> None:
        for row in range(y, y + h):
            start = row * self.width + x
            self.pixels[start : start + w] = [pixel] * w

    def apply(self, data: bytes) -> None:
        (count,) = struct.unpack_from(">H", data, 2)
        offset = 4
        for _ in range(count):
            x, y, w, h, encoding = struct.unpack_from(">HHHHi", data, offset)
            offset += 12
            if encoding == rfb.PSEUDO_LAST_RECT:
                break
            if encoding < 0:
                self.pseudo.add(encoding)
                if encoding == rfb.PSEUDO_DESKTOP_SIZE:
                    self.width, self.height = w, h
                    self.pixels = [b"\x00\x00\x00\x00"] * (w * h)
                continue
            if encoding == rfb.ENCODING_RAW:
                for row in range(h):
                    line = data[offset + row * w * 4 : offset + (row + 1) * w * 4]
                    start = (y + row) * self.width + x
                    self.pixels[start : start + w] = [line[i : i + 4] for i in range(0, len(line), 4)]
                offset += w * h * 4
            elif encoding == rfb.ENCODING_COPY_RECT:
                sx, sy = struct.unpack_from(">HH", data, offset)
                offset += 4
                block = [
                    self.pixels[(sy + r) * self.width + sx : (sy + r) * self.width + sx + w] for r in range(h)
                ]
                for r, line in enumerate(block):
                    self.pixels[(y + r) * self.width + x : (y + r) * self.width + x + w] = line
            elif encoding == rfb.ENCODING_RRE:
                (n,) = struct.unpack_from(">I", data, offset)
                self.fill(x, y, w, h, data[offset + 4 : offset + 8])
                offset += 8
                for _ in range(n):
                    pixel = data[offset : offset + 4]
                    sx, sy, sw, sh = struct.unpack_from(">HHHH", data, offset + 4)
                    self.fill(x + sx, y + sy, sw, sh, pixel)
                    offset += 12
            elif encoding == rfb.ENCODING_HEXTILE:
                offset = self._hextile(data, offset, x, y, w, h)
            elif encoding == rfb.ENCODING_TIGHT and self.tight_decoder is not None:
                decoder = self.tight_decoder
                self.tight_rects += 1
                offset = decoder.tight(x, y, w, h, data, offset)  # keeps the zlib streams going
                for row in range(y, y + h):
                    rgb = decoder.fb[(row * self.width + x) * 3 : (row * self.width + x + w) * 3]
                    start = row * self.width + x
                    self.pixels[start : start + w] = [bytes(rgb[i : i + 3]) + b"\x00" for i in range(0, len(rgb), 3)]
            else:
                raise AssertionError(f"unexpected encoding {encoding}")

    def _hextile(self, data: bytes, offset: int, x: int, y: int, w: int, h: int) -> int:
        background = foreground = b"\x00\x00\x00\x00"
        for ty in range(y, y + h, 16):
            th = min(16, y + h - ty)
            for tx in range(x, x + w, 16):
                tw = min(16, x + w - tx)
                flags = data[offset]
                offset += 1
                if flags & 1:
                    for row in range(th):
                        line = data[offset + row * tw * 4 : offset + (row + 1) * tw * 4]
                        start = (ty + row) * self.width + tx
                        self.pixels[start : start + tw] = [line[i : i + 4] for i in range(0, len(line), 4)]
                    offset += tw * th * 4
                    continue
                if flags & 2:
                    background, offset = data[offset : offset + 4], offset + 4
                self.fill(tx, ty, tw, th, background)
                if flags & 4:
                    foreground, offset = data[offset : offset + 4], offset + 4
                if flags & 8:
                    count = data[offset]
                    offset += 1
                    for _ in range(count):
                        pixel = foreground
                        if flags & 16:
                            pixel, offset = data[offset : offset + 4], offset + 4
                        xy, wh = data[offset], data[offset + 1]
                        offset += 2
                        self.fill(tx + (xy >> 4), ty + (xy & 15), (wh >> 4) + 1, (wh & 15) + 1, pixel)
        return offset
