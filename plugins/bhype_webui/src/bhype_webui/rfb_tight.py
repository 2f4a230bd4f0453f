"""Where a Tight-encoded rectangle ends (rfbproto, "Tight Encoding"), and its zlib resets.

The multiplexer does not decode Tight; it finds each rectangle's end so whole updates can be
relayed, and it may set the compression-control byte's reset bits. Tight keeps four zlib
streams per connection; a viewer can share the upstream's streams only if it saw every Tight
rectangle since they were last reset. When a viewer joins late, the multiplexer reconnects to
the VM's server (fresh streams there) and sets all four reset bits in the first rectangle of
the new connection, so every viewer's decoder (noVNC core/decoders/tight.js honours them)
starts fresh streams at the same point. bHype never asks for JPEG (no quality-level pseudo
encoding), so QEMU sends lossless Tight.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bhype_webui import rfb

ReadExactly = Callable[[int], Awaitable[bytes]]

_FILL = 8
_JPEG = 9
_FILTER_PRESENT = 4
_FILTER_COPY, _FILTER_PALETTE, _FILTER_GRADIENT = 0, 1, 2
MIN_TO_COMPRESS = 12  # shorter pixel data is sent as it is (no length, no zlib)
RESET_ALL = 0x0F


@dataclass
class TightState:
    """Per upstream connection: whether the next rectangle must carry the reset bits."""

    reset_next: bool = False


def tpixel_size(pixel_format: rfb.PixelFormat) -> int:
    """TPIXEL: 3 bytes for 32-bit true colour of depth 24 with 8 bits per colour, else a pixel."""
    if (
        pixel_format.bits_per_pixel == 32
        and pixel_format.depth == 24
        and pixel_format.true_colour
        and pixel_format.red_max == pixel_format.green_max == pixel_format.blue_max == 255
    ):
        return 3
    return pixel_format.bytes_per_pixel


async def _compact_length(read: ReadExactly) -> tuple[bytes, int]:
    """1 to 3 bytes, 7 bits each, least significant first (the third byte carries 8)."""
    raw = await read(1)
    length = raw[0] & 0x7F
    if raw[0] & 0x80:
        second = await read(1)
        raw += second
        length |= (second[0] & 0x7F) << 7
        if second[0] & 0x80:
            third = await read(1)
            raw += third
            length |= third[0] << 14
    return raw, length


async def read_tight(read: ReadExactly, tpixel: int, width: int, height: int, state: TightState) -> bytes:
    """The data of one Tight rectangle (after its header), reset bits set if ``state`` says so.

    :raises rfb.ProtocolError: TightPNG or an unknown compression type or filter.
    """
    ctl = (await read(1))[0]
    if state.reset_next:
        ctl |= RESET_ALL
        state.reset_next = False
    head = bytes([ctl])
    kind = ctl >> 4
    if kind == _FILL:
        return head + await read(tpixel)
    if kind == _JPEG:
        raw, length = await _compact_length(read)
        return head + raw + await read(length)
    if kind > _JPEG:
        raise rfb.ProtocolError(f"unsupported Tight compression type {kind}")
    row = width * tpixel
    if kind & _FILTER_PRESENT:
        filter_id = await read(1)
        head += filter_id
        if filter_id[0] == _FILTER_PALETTE:
            count = await read(1)
            colours = count[0] + 1
            head += count + await read(colours * tpixel)
            row = (width + 7) // 8 if colours == 2 else width
        elif filter_id[0] not in (_FILTER_COPY, _FILTER_GRADIENT):
            raise rfb.ProtocolError(f"unsupported Tight filter {filter_id[0]}")
    size = row * height
    if size < MIN_TO_COMPRESS:
        return head + await read(size)
    raw, length = await _compact_length(read)
    return head + raw + await read(length)
