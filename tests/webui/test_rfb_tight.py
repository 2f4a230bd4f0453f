"""Tight rectangles (rfbproto "Tight Encoding"): where each ends, the reset bits the
multiplexer sets, and the chunk-keeping upstream stream the relay reads them from."""

from __future__ import annotations

import asyncio
import socket
import struct
import zlib

import pytest

from bhype_webui import rfb
from bhype_webui.chunk_stream import adopt
from bhype_webui.rfb_tight import TightState, tpixel_size
from bhype_webui.rfb_updates import read_server_message


def compact(length: int) -> bytes:
    """The 1-3 byte compact length."""
    out = bytearray([length & 0x7F])
    if length > 0x7F:
        out[0] |= 0x80
        out.append(length >> 7 & 0x7F)
        if length > 0x3FFF:
            out[1] |= 0x80
            out.append(length >> 14 & 0xFF)
    return bytes(out)


def tight(w: int, h: int, body: bytes) -> bytes:
    return rfb.rectangle_header(0, 0, w, h, rfb.ENCODING_TIGHT) + body


def sample_update() -> bytes:
    """One update with every kind of Tight rectangle QEMU sends (and JPEG), then a raw one."""
    stream = zlib.compressobj()
    pixels = bytes(range(256)) * 3 * 40  # 64x40 pixels of 3-byte TPIXELs
    copy = stream.compress(pixels) + stream.flush(zlib.Z_SYNC_FLUSH)
    bitmap = stream.compress(b"\xaa" * (2 * 30)) + stream.flush(zlib.Z_SYNC_FLUSH)  # 16x30, 2 colours
    indexed = stream.compress(bytes(i % 5 for i in range(300 * 2))) + stream.flush(zlib.Z_SYNC_FLUSH)
    rects = [
        tight(640, 480, b"\x80" + b"\x01\x02\x03"),  # fill
        tight(64, 40, b"\x00" + compact(len(copy)) + copy),  # basic, stream 0, no filter
        tight(2, 1, b"\x10" + b"\x01" * 6),  # basic, stream 1: 6 bytes < 12, sent as they are
        tight(16, 30, b"\x60\x01\x01" + b"\x00" * 6 + compact(len(bitmap)) + bitmap),  # palette of 2
        tight(300, 2, b"\x70\x01\x04" + b"\x00" * 15 + compact(len(indexed)) + indexed),  # palette of 5
        tight(8, 8, b"\x40\x02" + compact(200) + b"\x00" * 200),  # gradient filter, stream 0
        tight(20, 20, b"\x90" + compact(20000) + b"\xff" * 20000),  # JPEG: a 3-byte length
        rfb.rectangle_header(0, 0, 2, 2, rfb.ENCODING_RAW) + b"\x09" * 16,
    ]
    return rfb.framebuffer_update_header(len(rects)) + b"".join(rects)


def read_all(data: bytes, state: TightState) -> list:
    async def run():
        reader = asyncio.StreamReader()
        reader.feed_data(data)
        reader.feed_eof()
        messages = []
        while not reader.at_eof():
            messages.append(await read_server_message(reader.readexactly, 4, None, (3, state)))
        return messages

    return asyncio.run(run())


def test_every_tight_rectangle_ends_where_it_should():
    data = sample_update() + struct.pack(">BxHI", rfb.SERVER_CUT_TEXT, 0, 2) + b"hi"
    messages = read_all(data, TightState())
    assert [m.kind for m in messages] == [rfb.SERVER_FB_UPDATE, rfb.SERVER_CUT_TEXT]
    assert messages[0].data + messages[1].data == data
    assert messages[0].tight and not messages[1].tight


def test_reset_bits_go_into_the_first_rectangle_only():
    data = sample_update()
    state = TightState(reset_next=True)
    (message,) = read_all(data, state)
    first_ctl = len(rfb.framebuffer_update_header(1)) + 12
    assert message.data[first_ctl] == 0x80 | 0x0F  # fill, all four streams reset
    assert message.data[:first_ctl] + message.data[first_ctl + 1 :] == data[:first_ctl] + data[first_ctl + 1 :]
    assert not state.reset_next


def test_tight_png_is_refused():
    data = rfb.framebuffer_update_header(1) + tight(4, 4, b"\xa0" + compact(3) + b"png")
    with pytest.raises(rfb.ProtocolError, match="compression type 10"):
        read_all(data, TightState())


def test_tpixel_is_three_bytes_only_for_24_bit_true_colour():
    assert tpixel_size(rfb.STANDARD_FORMAT) == 3
    assert tpixel_size(rfb.PixelFormat(16, 16, False, True, 31, 63, 31, 11, 5, 0)) == 2


def test_chunk_stream_reads_across_chunks_without_losing_a_byte():
    async def run():
        ours, theirs = socket.socketpair()
        ours.setblocking(False)
        stream = await adopt(ours, unix=True)
        payload = bytes(range(256)) * 4096  # 1 MiB
        theirs.sendall(b"\x01\x02\x03" + payload[:1000])
        assert await stream.readexactly(1) == b"\x01"
        assert await stream.readexactly(2) == b"\x02\x03"
        sender = asyncio.get_running_loop().run_in_executor(None, theirs.sendall, payload[1000:])
        parts = await stream.read_parts(len(payload))
        await sender
        theirs.sendall(b"tail")
        theirs.close()
        rest = b""
        while chunk := await stream.read():
            rest += chunk
        with pytest.raises(asyncio.IncompleteReadError):
            await stream.readexactly(1)
        stream.close()
        return parts, rest, payload

    parts, rest, payload = asyncio.run(run())
    assert b"".join(parts) == payload and rest == b"tail"
