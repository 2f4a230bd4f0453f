"""RFB byte layouts (RFC 6143, section numbers in each test) and VNC authentication's DES."""

from __future__ import annotations

import asyncio
import os
import struct
import subprocess

import pytest

from bhype_core.testing.parts import require_program
from bhype_webui import rfb
from bhype_webui.des import des_encrypt_block
from bhype_webui.rfb_handshake import AuthenticationFailed, Desktop, client_handshake, server_handshake

# --- DES (FIPS 46-3) and VNC authentication (§7.2.2) ------------------------------------------


@pytest.mark.parametrize(
    ("key", "plain", "cipher"),
    [
        ("133457799BBCDFF1", "0123456789ABCDEF", "85E813540F0AB405"),  # the classic worked example
        ("0E329232EA6D0D73", "8787878787878787", "0000000000000000"),
        ("0101010101010101", "95F8A5E5DD31D900", "8000000000000000"),  # NBS SP 500-20 variable plaintext
    ],
)
def test_des_known_answers(key, plain, cipher):
    assert des_encrypt_block(bytes.fromhex(key), bytes.fromhex(plain)).hex().upper() == cipher


def test_des_matches_openssl_on_random_blocks():
    require_program("openssl", "openssl")
    for _ in range(5):
        key, block = os.urandom(8), os.urandom(8)
        argv = [
            "openssl",
            "enc",
            "-des-ecb",
            "-K",
            key.hex(),
            "-nopad",
            "-provider",
            "legacy",
            "-provider",
            "default",
        ]
        expected = subprocess.run(argv, input=block, capture_output=True, check=True, timeout=30).stdout
        assert des_encrypt_block(key, block) == expected


def test_vnc_key_reverses_the_bits_of_each_byte_and_pads_to_8():
    # 'a' = 0x61 = 01100001 -> 10000110 = 0x86; missing bytes are NUL.
    assert rfb.vnc_auth_key("a") == bytes([0x86]) + bytes(7)
    assert rfb.vnc_auth_key("123456789") == rfb.vnc_auth_key("12345678")  # only 8 characters count


def test_vnc_auth_response_encrypts_both_halves():
    challenge = bytes(range(16))
    key = rfb.vnc_auth_key("s3cret8!")
    response = rfb.vnc_auth_response("s3cret8!", challenge)
    assert response == des_encrypt_block(key, challenge[:8]) + des_encrypt_block(key, challenge[8:])
    with pytest.raises(rfb.ProtocolError):
        rfb.vnc_auth_response("x", bytes(15))


# --- handshake pieces (§7.1, §7.3) -------------------------------------------------------------


def test_versions():
    assert rfb.parse_version(b"RFB 003.008\n") == (3, 8)
    assert rfb.negotiated_version(b"RFB 003.008\n") == rfb.VERSION_3_8
    assert rfb.negotiated_version(b"RFB 003.007\n") == rfb.VERSION_3_7
    assert rfb.negotiated_version(b"RFB 003.005\n") == rfb.VERSION_3_3  # §7.1.1: unknown minors are 3.3
    for bad in (b"RFB 003.008", b"HTTP/1.1 200", b"RFB 00x.008\n"):
        with pytest.raises(rfb.ProtocolError):
            rfb.parse_version(bad)
    with pytest.raises(rfb.ProtocolError):
        rfb.negotiated_version(b"RFB 004.001\n")


def test_security_messages():
    assert rfb.security_types([1, 2]) == b"\x02\x01\x02"
    assert rfb.security_result(True) == b"\x00\x00\x00\x00"
    assert rfb.security_result(False, "no") == b"\x00\x00\x00\x01\x00\x00\x00\x02no"


def test_pixel_format_and_server_init_layout():
    packed = rfb.STANDARD_FORMAT.pack()
    # §7.4: bpp, depth, big-endian, true-colour, 3x u16 max, 3x u8 shift, 3 padding bytes.
    assert packed == bytes([32, 24, 0, 1, 0, 255, 0, 255, 0, 255, 0, 8, 16, 0, 0, 0])
    assert rfb.PixelFormat.unpack(packed) == rfb.STANDARD_FORMAT
    init = rfb.ServerInit(1024, 768, rfb.STANDARD_FORMAT, "web1").pack()
    assert init[:4] == b"\x04\x00\x03\x00" and init[4:20] == packed and init[20:24] == b"\x00\x00\x00\x04"
    assert init[24:] == b"web1"
    assert rfb.ServerInit.unpack_head(init[:24]) == (1024, 768, rfb.STANDARD_FORMAT, 4)
    with pytest.raises(rfb.ProtocolError):
        rfb.PixelFormat.unpack(bytes([24]) + packed[1:])


# --- client messages (§7.5) ---------------------------------------------------------------------


def test_client_message_layouts():
    assert rfb.set_pixel_format(rfb.STANDARD_FORMAT) == b"\x00\x00\x00\x00" + rfb.STANDARD_FORMAT.pack()
    assert rfb.set_encodings([0, -223]) == b"\x02\x00\x00\x02" + struct.pack(">ii", 0, -223)
    assert rfb.parse_set_encodings(rfb.set_encodings([5, -258])) == [5, -258]
    assert rfb.fb_update_request(True, 1, 2, 640, 480) == b"\x03\x01\x00\x01\x00\x02\x02\x80\x01\xe0"
    assert rfb.key_event(True, 0xFF0D) == b"\x04\x01\x00\x00\x00\x00\xff\x0d"
    assert rfb.pointer_event(1, 10, 20) == b"\x05\x01\x00\x0a\x00\x14"
    assert (
        rfb.qemu_extended_key_event(False, 0x61, 0x1E) == b"\xff\x00\x00\x00\x00\x00\x00\x61\x00\x00\x00\x1e"
    )


@pytest.mark.parametrize(
    "message",
    [
        rfb.set_pixel_format(rfb.STANDARD_FORMAT),
        rfb.set_encodings([0, 1, 5, -223, -258]),
        rfb.fb_update_request(False, 0, 0, 8, 8),
        rfb.key_event(False, 0x41),
        rfb.pointer_event(0, 1, 1),
        b"\x06\x00\x00\x00\x00\x00\x00\x03abc",  # ClientCutText
        rfb.qemu_extended_key_event(True, 0x41, 0x1E),
    ],
)
def test_client_message_length_finds_the_end(message):
    assert rfb.client_message_length(message) == len(message)
    assert rfb.client_message_length(message + b"\x04") == len(message)
    assert rfb.client_message_length(message[:-1]) is None


def test_client_message_length_refuses_what_is_not_relayed():
    for message in (b"\x96\x00", b"\xfb\x00", b"\xff\x01"):  # continuous updates, SetDesktopSize, QEMU audio
        with pytest.raises(rfb.ProtocolError):
            rfb.client_message_length(message)


# --- both handshakes against each other, over in-memory streams ---------------------------------


class Pipe:
    """One direction of an in-memory connection."""

    def __init__(self):
        self.reader = asyncio.StreamReader()

    async def write(self, data: bytes) -> None:
        self.reader.feed_data(data)


async def _scripted_server(
    to_client: Pipe, from_client: Pipe, security: list[int], password: str | None, challenge: bytes
) -> bytes:
    """A VNC server following §7.1-7.3 (3.8) byte by byte; returns what the client sent after init."""
    await to_client.write(rfb.VERSION_3_8)
    assert await from_client.reader.readexactly(12) == rfb.VERSION_3_8
    await to_client.write(rfb.security_types(security))
    chosen = (await from_client.reader.readexactly(1))[0]
    ok = True
    if chosen == rfb.SECURITY_VNC_AUTH:
        await to_client.write(challenge)
        response = await from_client.reader.readexactly(16)
        ok = response == rfb.vnc_auth_response(password or "", challenge)
    await to_client.write(rfb.security_result(ok, "" if ok else "wrong password"))
    if not ok:
        return b""
    assert await from_client.reader.readexactly(1) == b"\x01"  # shared
    await to_client.write(
        rfb.ServerInit(800, 600, rfb.PixelFormat(16, 16, True, True, 31, 63, 31, 11, 5, 0), "vm").pack()
    )
    return await from_client.reader.readexactly(20 + 4 + 4 * 7)


@pytest.mark.parametrize(("security", "password"), [([1], None), ([2], "pw"), ([1, 2], "pw")])
def test_client_handshake_against_a_scripted_server(security, password):
    async def run():
        down, up = Pipe(), Pipe()
        server = asyncio.ensure_future(_scripted_server(down, up, security, password, os.urandom(16)))
        desktop = await client_handshake(down.reader.readexactly, up.write, password)
        return desktop, await server

    desktop, after = asyncio.run(run())
    assert (desktop.width, desktop.height, desktop.name) == (800, 600, "vm")
    assert desktop.pixel_format == rfb.STANDARD_FORMAT  # what the client set, not the server's
    assert after[:20] == rfb.set_pixel_format(rfb.STANDARD_FORMAT) and after[20] == rfb.CLIENT_SET_ENCODINGS


def test_client_handshake_wrong_password_fails_clearly():
    async def run():
        down, up = Pipe(), Pipe()
        server = asyncio.ensure_future(_scripted_server(down, up, [2], "right", os.urandom(16)))
        try:
            await client_handshake(down.reader.readexactly, up.write, "wrong")
        finally:
            await server

    with pytest.raises(AuthenticationFailed, match="wrong password"):
        asyncio.run(run())


def test_server_handshake_offers_none_and_announces_the_desktop():
    desktop = Desktop(640, 480, rfb.STANDARD_FORMAT, "web1")

    async def run():
        down, up = Pipe(), Pipe()
        await up.write(rfb.VERSION_3_8 + bytes([rfb.SECURITY_NONE]) + b"\x01")
        version = await server_handshake(up.reader.readexactly, down.write, lambda: desktop)
        down.reader.feed_eof()
        return version, await down.reader.read()

    version, sent = asyncio.run(run())
    assert version == rfb.VERSION_3_8
    assert sent == (
        rfb.VERSION_3_8
        + b"\x01\x01"
        + rfb.security_result(True)
        + rfb.ServerInit(640, 480, rfb.STANDARD_FORMAT, "web1").pack()
    )
