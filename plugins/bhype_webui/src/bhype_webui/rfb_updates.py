"""Reading whole server-to-client RFB messages (RFC 6143 §7.6) off a byte stream.

The multiplexer must know where each message ends to hand it, intact, to several viewers and
to slip its own messages in between. Only stateless encodings are understood (raw, CopyRect,
RRE, hextile and the pseudo-encodings below) and Tight, whose zlib streams can be reset
(rfb_tight.py). ZRLE and zlib keep one compression stream per connection that no message
resets, which a viewer joining later could never decode, so the multiplexer never asks for them.
"""

from __future__ import annotations

import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from bhype_webui import rfb
from bhype_webui.rfb_tight import TightState, read_tight

ReadExactly = Callable[[int], Awaitable[bytes]]
ReadParts = Callable[[int], Awaitable[list[bytes]]]

# Pixel data at least this long is taken as the chunks it arrived in and joined once, with the
# rest of its message (StreamReader copied a 3 MiB raw frame twice more: issue 15's profile).
# One WebSocket message per RFB message: many smaller ones made uvicorn's write flow control
# wait for the browser after each (measured: half the frames per second).
BIG_PART = 64 * 1024

# Hextile sub-encoding mask bits (§7.7.4).
_HEX_RAW = 1
_HEX_BACKGROUND = 2
_HEX_FOREGROUND = 4
_HEX_ANY_SUBRECTS = 8
_HEX_SUBRECTS_COLOURED = 16

# Encodings the multiplexer asks the VM's server for, in order of preference. The pseudo
# encodings announce desktop resizes, allow LastRect, and QEMU's scancode key events (noVNC
# sends real scancodes then, so keyboard layouts do not matter).
UPSTREAM_ENCODINGS = [
    rfb.ENCODING_COPY_RECT,
    rfb.ENCODING_HEXTILE,
    rfb.ENCODING_RRE,
    rfb.ENCODING_RAW,
    rfb.PSEUDO_DESKTOP_SIZE,
    rfb.PSEUDO_LAST_RECT,
    rfb.PSEUDO_QEMU_EXTENDED_KEY,
]
# The same with Tight first, asked for while every viewer has announced Tight (rfb_tight.py).
UPSTREAM_ENCODINGS_TIGHT = [rfb.ENCODING_COPY_RECT, rfb.ENCODING_TIGHT, *UPSTREAM_ENCODINGS[1:]]


@dataclass
class ServerMessage:
    """One complete server message: its bytes and what the multiplexer needs to know."""

    kind: int
    parts: list[bytes]  # the message's bytes, in order, as read
    desktop_size: tuple[int, int] | None = None  # a DesktopSize rectangle's new size
    pseudo: set[int] = field(default_factory=set)  # pseudo-encodings seen in an update
    tight: bool = False  # a Tight rectangle is in it (it continues the zlib streams)

    @property
    def data(self) -> bytes:
        """The whole message as one ``bytes``."""
        return self.parts[0] if len(self.parts) == 1 else b"".join(self.parts)


async def read_server_message(
    read: ReadExactly,
    bytes_per_pixel: int,
    read_parts: ReadParts | None = None,
    tight: tuple[int, TightState] | None = None,
) -> ServerMessage:
    """Read the next whole server message with ``read`` (``StreamReader.readexactly``); big
    pixel data with ``read_parts`` (``ChunkStream.read_parts``) when given. ``tight`` (the
    TPIXEL size and the connection's :class:`TightState`) is given when Tight was asked for.

    :raises rfb.ProtocolError: an unknown message type or an encoding that was not asked for.
    :raises asyncio.IncompleteReadError: the stream ended inside a message.
    """
    first = await read(1)
    kind = first[0]
    if kind == rfb.SERVER_FB_UPDATE:
        return await _read_update(read, bytes_per_pixel, first, read_parts, tight)
    if kind == rfb.SERVER_SET_COLOUR_MAP:
        head = await read(5)  # padding, first-colour, number-of-colours
        (count,) = struct.unpack_from(">H", head, 3)
        return ServerMessage(kind, [first + head + await _read(read, 6 * count)])
    if kind == rfb.SERVER_BELL:
        return ServerMessage(kind, [first])
    if kind == rfb.SERVER_CUT_TEXT:
        head = await read(7)  # padding, length
        (length,) = struct.unpack_from(">I", head, 3)
        return ServerMessage(kind, [first + head + await _read(read, length)])
    raise rfb.ProtocolError(f"unsupported server message type {kind}")


async def _read(read: ReadExactly, count: int) -> bytes:
    return await read(count) if count else b""


async def _read_update(
    read: ReadExactly,
    bpp: int,
    first: bytes,
    read_parts: ReadParts | None,
    tight: tuple[int, TightState] | None,
) -> ServerMessage:
    head = await read(3)
    (count,) = struct.unpack_from(">H", head, 1)
    parts = [first, head]
    message = ServerMessage(rfb.SERVER_FB_UPDATE, [])
    index = 0
    # count 0xFFFF with a LastRect pseudo-rectangle at the end is allowed (-224, rfbproto).
    while index < count:
        header = await read(12)
        parts.append(header)
        x, y, width, height, encoding = struct.unpack(">HHHHi", header)
        index += 1
        if encoding == rfb.PSEUDO_LAST_RECT:
            message.pseudo.add(encoding)
            break
        if encoding < 0:
            message.pseudo.add(encoding)
        if encoding == rfb.PSEUDO_DESKTOP_SIZE:
            message.desktop_size = (width, height)
        if encoding == rfb.ENCODING_TIGHT and tight is not None:
            message.tight = True
            parts.append(await read_tight(read, tight[0], width, height, tight[1]))
        elif encoding == rfb.ENCODING_RAW and read_parts is not None and width * height * bpp >= BIG_PART:
            parts.extend(await read_parts(width * height * bpp))
        else:
            parts.append(await _read_rect_data(read, bpp, width, height, encoding))
    message.parts = parts
    return message


async def _read_rect_data(read: ReadExactly, bpp: int, width: int, height: int, encoding: int) -> bytes:
    if encoding == rfb.ENCODING_RAW:
        return await _read(read, width * height * bpp)
    if encoding == rfb.ENCODING_COPY_RECT:
        return await read(4)
    if encoding == rfb.ENCODING_RRE:
        head = await read(4 + bpp)
        (subrects,) = struct.unpack_from(">I", head)
        return head + await _read(read, subrects * (bpp + 8))
    if encoding == rfb.ENCODING_HEXTILE:
        return await _read_hextile(read, bpp, width, height)
    if encoding in (rfb.PSEUDO_DESKTOP_SIZE, rfb.PSEUDO_QEMU_EXTENDED_KEY):
        return b""
    if encoding == rfb.PSEUDO_CURSOR:
        return await _read(read, width * height * bpp + ((width + 7) // 8) * height)
    if encoding == rfb.PSEUDO_EXTENDED_DESKTOP_SIZE:
        head = await read(4)
        return head + await _read(read, 16 * head[0])
    raise rfb.ProtocolError(f"unsupported rectangle encoding {encoding}")


async def _read_hextile(read: ReadExactly, bpp: int, width: int, height: int) -> bytes:
    """§7.7.4: 16x16 tiles, left to right, top to bottom; each starts with a sub-encoding mask."""
    parts = []
    for tile_y in range(0, height, 16):
        tile_h = min(16, height - tile_y)
        for tile_x in range(0, width, 16):
            tile_w = min(16, width - tile_x)
            mask = await read(1)
            parts.append(mask)
            flags = mask[0]
            if flags & _HEX_RAW:
                parts.append(await read(tile_w * tile_h * bpp))
                continue
            fixed = (bpp if flags & _HEX_BACKGROUND else 0) + (bpp if flags & _HEX_FOREGROUND else 0)
            if fixed:
                parts.append(await read(fixed))
            if flags & _HEX_ANY_SUBRECTS:
                number = await read(1)
                parts.append(number)
                each = (bpp + 2) if flags & _HEX_SUBRECTS_COLOURED else 2
                parts.append(await _read(read, number[0] * each))
    return b"".join(parts)
