"""RFB 3.8 (RFC 6143) byte layouts: handshake pieces and client-to-server messages, pure.

Section numbers below are RFC 6143's. Everything is big-endian ("network byte order", §7).
The console multiplexer speaks the server side of the handshake to browsers and the client
side to the VM's VNC server; both use these builders and parsers.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from bhype_webui.des import des_encrypt_block

VERSION_3_3 = b"RFB 003.003\n"
VERSION_3_7 = b"RFB 003.007\n"
VERSION_3_8 = b"RFB 003.008\n"
VERSION_LENGTH = 12

# §7.1.2 security types.
SECURITY_INVALID = 0
SECURITY_NONE = 1
SECURITY_VNC_AUTH = 2
CHALLENGE_LENGTH = 16

# §7.5 client-to-server message types (and QEMU's extension, message 255 sub-type 0).
CLIENT_SET_PIXEL_FORMAT = 0
CLIENT_SET_ENCODINGS = 2
CLIENT_FB_UPDATE_REQUEST = 3
CLIENT_KEY_EVENT = 4
CLIENT_POINTER_EVENT = 5
CLIENT_CUT_TEXT = 6
CLIENT_QEMU = 255
QEMU_EXTENDED_KEY_EVENT = 0

# §7.6 server-to-client message types.
SERVER_FB_UPDATE = 0
SERVER_SET_COLOUR_MAP = 1
SERVER_BELL = 2
SERVER_CUT_TEXT = 3

# §7.7 encodings and §7.8 pseudo-encodings.
ENCODING_RAW = 0
ENCODING_COPY_RECT = 1
ENCODING_RRE = 2
ENCODING_HEXTILE = 5
ENCODING_TIGHT = 7  # rfbproto "Tight Encoding"; QEMU ui/vnc-enc-tight.c
PSEUDO_CURSOR = -239
PSEUDO_DESKTOP_SIZE = -223
PSEUDO_LAST_RECT = -224
PSEUDO_QEMU_EXTENDED_KEY = -258
PSEUDO_EXTENDED_DESKTOP_SIZE = -308

# Client-message lengths that do not depend on the content (§7.5.x).
_FIXED_CLIENT_LENGTHS = {
    CLIENT_SET_PIXEL_FORMAT: 20,
    CLIENT_FB_UPDATE_REQUEST: 10,
    CLIENT_KEY_EVENT: 8,
    CLIENT_POINTER_EVENT: 6,
}
QEMU_EXTENDED_KEY_LENGTH = 12


class ProtocolError(Exception):
    """The peer sent something RFB does not allow (or this implementation does not speak)."""


def parse_version(data: bytes) -> tuple[int, int]:
    """``(major, minor)`` of a 12-byte ProtocolVersion message (§7.1.1: ``RFB xxx.yyy\\n``)."""
    if len(data) != VERSION_LENGTH or not data.startswith(b"RFB ") or data[7:8] != b"." or data[-1:] != b"\n":
        raise ProtocolError(f"not an RFB protocol version: {data!r}")
    try:
        return int(data[4:7]), int(data[8:11])
    except ValueError:
        raise ProtocolError(f"not an RFB protocol version: {data!r}") from None


def negotiated_version(server: bytes) -> bytes:
    """The version a client answers to ``server``'s: the highest of 3.3/3.7/3.8 not above it.

    §7.1.1: other minor numbers (3.5 of some clients, 3.889 of Apple) are treated as 3.3.
    """
    major, minor = parse_version(server)
    if major != 3:
        raise ProtocolError(f"unsupported RFB major version {major}")
    if minor >= 8:
        return VERSION_3_8
    return VERSION_3_7 if minor == 7 else VERSION_3_3


def vnc_auth_key(password: str) -> bytes:
    """The DES key of VNC authentication: the first 8 bytes of the password, NUL-padded, with
    the bits of every byte reversed (the historical quirk of the reference implementation,
    which RFC 6143 §7.2.2 does not spell out but every server expects)."""
    raw = password.encode("latin-1", errors="replace")[:8].ljust(8, b"\0")
    return bytes(int(f"{byte:08b}"[::-1], 2) for byte in raw)


def vnc_auth_response(password: str, challenge: bytes) -> bytes:
    """The 16-byte answer to a VNC authentication challenge (§7.2.2): both 8-byte halves
    DES-encrypted with :func:`vnc_auth_key`."""
    if len(challenge) != CHALLENGE_LENGTH:
        raise ProtocolError(f"a VNC challenge has 16 bytes, not {len(challenge)}")
    key = vnc_auth_key(password)
    return des_encrypt_block(key, challenge[:8]) + des_encrypt_block(key, challenge[8:])


def security_types(types: list[int]) -> bytes:
    """§7.1.2 (3.7+): number-of-security-types, then one byte per type."""
    return bytes([len(types), *types])


def security_result(ok: bool, reason: str = "") -> bytes:
    """§7.1.3: 0 = OK, 1 = failed; 3.8 adds a reason string after a failure."""
    if ok:
        return struct.pack(">I", 0)
    text = reason.encode()
    return struct.pack(">II", 1, len(text)) + text


@dataclass(frozen=True)
class PixelFormat:
    """§7.4 PIXEL_FORMAT (16 bytes)."""

    bits_per_pixel: int
    depth: int
    big_endian: bool
    true_colour: bool
    red_max: int
    green_max: int
    blue_max: int
    red_shift: int
    green_shift: int
    blue_shift: int

    STRUCT = struct.Struct(">BBBBHHHBBB3x")

    @property
    def bytes_per_pixel(self) -> int:
        return self.bits_per_pixel // 8

    def pack(self) -> bytes:
        """The 16-byte wire form."""
        return self.STRUCT.pack(
            self.bits_per_pixel, self.depth, int(self.big_endian), int(self.true_colour),
            self.red_max, self.green_max, self.blue_max, self.red_shift, self.green_shift, self.blue_shift,
        )  # fmt: skip

    @classmethod
    def unpack(cls, data: bytes) -> PixelFormat:
        """Parse 16 bytes; raises :class:`ProtocolError` on a bits-per-pixel RFB does not allow."""
        bpp, depth, big, true_colour, rmax, gmax, bmax, rs, gs, bs = cls.STRUCT.unpack(data)
        if bpp not in (8, 16, 32):
            raise ProtocolError(f"bits-per-pixel must be 8, 16 or 32, not {bpp}")
        return cls(bpp, depth, bool(big), bool(true_colour), rmax, gmax, bmax, rs, gs, bs)


# What noVNC asks for (core/rfb.js, RFB.messages.pixelFormat with depth 24): 32 bits per pixel,
# little-endian, red in the lowest byte. The multiplexer makes the VM's server send this.
STANDARD_FORMAT = PixelFormat(32, 24, False, True, 255, 255, 255, 0, 8, 16)


@dataclass(frozen=True)
class ServerInit:
    """§7.3.2 ServerInit: framebuffer size, pixel format, desktop name."""

    width: int
    height: int
    pixel_format: PixelFormat
    name: str

    HEAD = struct.Struct(">HH16sI")

    def pack(self) -> bytes:
        """The wire form."""
        name = self.name.encode("utf-8")
        return self.HEAD.pack(self.width, self.height, self.pixel_format.pack(), len(name)) + name

    @classmethod
    def unpack_head(cls, data: bytes) -> tuple[int, int, PixelFormat, int]:
        """Parse the fixed 24 bytes: ``(width, height, pixel format, name length)``."""
        width, height, pixel_format, name_length = cls.HEAD.unpack(data)
        return width, height, PixelFormat.unpack(pixel_format), name_length


def set_pixel_format(pixel_format: PixelFormat) -> bytes:
    """§7.5.1 SetPixelFormat."""
    return struct.pack(">B3x", CLIENT_SET_PIXEL_FORMAT) + pixel_format.pack()


def set_encodings(encodings: list[int]) -> bytes:
    """§7.5.2 SetEncodings (signed 32-bit encoding numbers, in order of preference)."""
    return struct.pack(f">BxH{len(encodings)}i", CLIENT_SET_ENCODINGS, len(encodings), *encodings)


def parse_set_encodings(message: bytes) -> list[int]:
    """The encodings of a complete SetEncodings message."""
    (count,) = struct.unpack_from(">H", message, 2)
    return list(struct.unpack_from(f">{count}i", message, 4))


def fb_update_request(incremental: bool, x: int, y: int, width: int, height: int) -> bytes:
    """§7.5.3 FramebufferUpdateRequest."""
    return struct.pack(">BBHHHH", CLIENT_FB_UPDATE_REQUEST, int(incremental), x, y, width, height)


def key_event(down: bool, keysym: int) -> bytes:
    """§7.5.4 KeyEvent (X11 keysym)."""
    return struct.pack(">BBxxI", CLIENT_KEY_EVENT, int(down), keysym)


def pointer_event(button_mask: int, x: int, y: int) -> bytes:
    """§7.5.5 PointerEvent."""
    return struct.pack(">BBHH", CLIENT_POINTER_EVENT, button_mask, x, y)


def qemu_extended_key_event(down: bool, keysym: int, keycode: int) -> bytes:
    """QEMU Extended Key Event (message 255, sub-type 0: keysym plus an XT scancode), which noVNC
    sends once the server announced pseudo-encoding -258 (rfbproto "QEMU Extended Key Event")."""
    return struct.pack(">BBHII", CLIENT_QEMU, QEMU_EXTENDED_KEY_EVENT, int(down), keysym, keycode)


def client_message_length(buffer: bytes | bytearray) -> int | None:
    """Length of the first client-to-server message in ``buffer``, or ``None`` while it is
    incomplete.

    :raises ProtocolError: a message type this bridge does not relay (it only accepts what it
        can pass on or answer itself: §7.5.1-7.5.6 and QEMU's extended key event).
    """
    if not buffer:
        return None
    kind = buffer[0]
    if kind in _FIXED_CLIENT_LENGTHS:
        length = _FIXED_CLIENT_LENGTHS[kind]
    elif kind == CLIENT_SET_ENCODINGS:
        if len(buffer) < 4:
            return None
        length = 4 + 4 * struct.unpack_from(">H", buffer, 2)[0]
    elif kind == CLIENT_CUT_TEXT:
        if len(buffer) < 8:
            return None
        length = 8 + struct.unpack_from(">I", buffer, 4)[0]
    elif kind == CLIENT_QEMU:
        if len(buffer) < 2:
            return None
        if buffer[1] != QEMU_EXTENDED_KEY_EVENT:
            raise ProtocolError(f"unsupported QEMU client message sub-type {buffer[1]}")
        length = QEMU_EXTENDED_KEY_LENGTH
    else:
        raise ProtocolError(f"unsupported client message type {kind}")
    return length if len(buffer) >= length else None


def framebuffer_update_header(rectangles: int) -> bytes:
    """§7.6.1 FramebufferUpdate header (message type, padding, number-of-rectangles)."""
    return struct.pack(">BxH", SERVER_FB_UPDATE, rectangles)


def rectangle_header(x: int, y: int, width: int, height: int, encoding: int) -> bytes:
    """§7.6.1 rectangle header; the encoding's data follows."""
    return struct.pack(">HHHHi", x, y, width, height, encoding)
