"""Finding the end of each server message (RFC 6143 §7.6, encodings §7.7-7.8)."""

from __future__ import annotations

import asyncio
import struct

import pytest

from bhype_webui import rfb
from bhype_webui.rfb_updates import read_server_message

BPP = 4


def read_all(data: bytes, bpp: int = BPP) -> list:
    """Every whole message in ``data``, in order."""

    async def run():
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        messages = []
        while not reader.at_eof():
            messages.append(await read_server_message(reader.readexactly, bpp))
        return messages

    return asyncio.run(run())


def update(*rects: bytes, count: int | None = None) -> bytes:
    return rfb.framebuffer_update_header(len(rects) if count is None else count) + b"".join(rects)


def raw_rect(w: int, h: int) -> bytes:
    return rfb.rectangle_header(0, 0, w, h, rfb.ENCODING_RAW) + b"\x07" * (w * h * BPP)


def hextile_rect(w: int, h: int) -> bytes:
    """A hextile rectangle whose tiles use every sub-encoding flag (§7.7.4)."""
    tiles = []
    sizes = [(min(16, w - x), min(16, h - y)) for y in range(0, h, 16) for x in range(0, w, 16)]
    for index, (tile_w, tile_h) in enumerate(sizes):
        kind = index % 4
        if kind == 0:  # raw tile (flag 1): its pixels follow, edge tiles being smaller
            tiles.append(b"\x01" + b"\x09" * (tile_w * tile_h * BPP))
        elif kind == 1:  # background only
            tiles.append(b"\x02" + b"\x01" * BPP)
        elif kind == 2:  # background + foreground + 2 plain subrects
            tiles.append(b"\x0e" + b"\x02" * BPP + b"\x03" * BPP + b"\x02" + b"\x00\x11" * 2)
        else:  # coloured subrects (flags 8|16): each has its own pixel
            tiles.append(b"\x18" + b"\x01" + b"\x04" * BPP + b"\x00\x11")
    return rfb.rectangle_header(0, 0, w, h, rfb.ENCODING_HEXTILE) + b"".join(tiles)


def test_raw_copyrect_rre_and_bell_are_split_exactly():
    rre = (
        rfb.rectangle_header(0, 0, 8, 8, rfb.ENCODING_RRE)
        + struct.pack(">I", 2)
        + b"\x00" * BPP
        + (b"\x01" * BPP + bytes(8)) * 2
    )
    copy = rfb.rectangle_header(4, 4, 8, 8, rfb.ENCODING_COPY_RECT) + b"\x00\x00\x00\x00"
    first = update(raw_rect(3, 2), copy, rre)
    bell = b"\x02"
    cut = b"\x03\x00\x00\x00" + struct.pack(">I", 5) + b"hello"
    colours = b"\x01\x00\x00\x00\x00\x02" + bytes(12)
    messages = read_all(first + bell + cut + colours)
    assert [m.data for m in messages] == [first, bell, cut, colours]
    assert [m.kind for m in messages] == [0, 2, 3, 1]


def test_hextile_tiles_are_walked_with_partial_edge_tiles():
    # 40x20: tiles of 16, 16, 8 wide and 16, 4 high; tiles 0 and 4 (16x4) are raw.
    message = update(hextile_rect(40, 20))
    assert [m.data for m in read_all(message + b"\x02")] == [message, b"\x02"]


def test_pseudo_rectangles_report_resize_and_extended_keys():
    resize = rfb.rectangle_header(0, 0, 1280, 800, rfb.PSEUDO_DESKTOP_SIZE)
    keys = rfb.rectangle_header(0, 0, 0, 0, rfb.PSEUDO_QEMU_EXTENDED_KEY)
    (message,) = read_all(update(resize, keys))
    assert message.desktop_size == (1280, 800)
    assert message.pseudo == {rfb.PSEUDO_DESKTOP_SIZE, rfb.PSEUDO_QEMU_EXTENDED_KEY}


def test_last_rect_ends_an_update_of_unknown_length():
    last = rfb.rectangle_header(0, 0, 0, 0, rfb.PSEUDO_LAST_RECT)
    message = update(raw_rect(1, 1), last, count=0xFFFF)
    assert [m.data for m in read_all(message + b"\x02")] == [message, b"\x02"]


def test_a_stream_ending_inside_a_message_is_an_incomplete_read():
    with pytest.raises(asyncio.IncompleteReadError):
        read_all(update(raw_rect(4, 4))[:-1])


@pytest.mark.parametrize(
    ("data", "why"),
    [
        (b"\x96", "message type 150"),
        (update(rfb.rectangle_header(0, 0, 1, 1, 16)), "encoding 16"),  # ZRLE: never asked for
    ],
)
def test_unknown_messages_and_encodings_are_refused(data, why):
    with pytest.raises(rfb.ProtocolError, match=why):
        read_all(data)
