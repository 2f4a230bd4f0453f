"""Both RFB handshakes of the multiplexer (RFC 6143 §7.1-7.3), over async byte streams.

Upstream, bHype is the client of the VM's VNC server (bhyve fbuf or QEMU): RFB 3.3, 3.7 or
3.8, security None or VNC authentication with the VM's password, a *shared* ClientInit, then
the pixel format and the stateless encodings the multiplexer can relay. Downstream, bHype is
the server for each browser viewer: security None (the console ticket already authorised the
viewer) and a ServerInit describing the shared framebuffer.
"""

from __future__ import annotations

import struct
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from bhype_webui import rfb
from bhype_webui.rfb_updates import UPSTREAM_ENCODINGS

ReadExactly = Callable[[int], Awaitable[bytes]]
Write = Callable[[bytes], Awaitable[object]]


class AuthenticationFailed(rfb.ProtocolError):
    """The VM's VNC server refused the password (or offered no security type we speak)."""


@dataclass
class Desktop:
    """What the VM's server announced: size, the pixel format now in force, its name."""

    width: int
    height: int
    pixel_format: rfb.PixelFormat
    name: str


async def _reason(read: ReadExactly) -> str:
    (length,) = struct.unpack(">I", await read(4))
    return (await read(length)).decode("utf-8", errors="replace") if length else ""


async def client_handshake(
    read: ReadExactly,
    write: Write,
    password: str | None,
    pixel_format: rfb.PixelFormat = rfb.STANDARD_FORMAT,
    encodings: list[int] | None = None,
) -> Desktop:
    """Connect to a VNC server as a shared client and set the pixel format and encodings.

    :param password: the VM's VNC password; ``None`` when the server needs none.
    :returns: the desktop, with ``pixel_format`` being the one just set.
    :raises AuthenticationFailed: wrong password, no password for a server that wants one,
        or no security type in common. :raises rfb.ProtocolError: anything else unexpected.
    """
    version = rfb.negotiated_version(await read(rfb.VERSION_LENGTH))
    await write(version)
    if version == rfb.VERSION_3_3:
        # §7.1.2 (3.3): the server picks the type and sends it as a 32-bit number.
        (chosen,) = struct.unpack(">I", await read(4))
        if chosen == rfb.SECURITY_INVALID:
            raise AuthenticationFailed(f"the VNC server refused the connection: {await _reason(read)}")
    else:
        (count,) = await read(1)
        if count == 0:
            raise AuthenticationFailed(f"the VNC server refused the connection: {await _reason(read)}")
        offered = list(await read(count))
        chosen = _choose(offered, password)
        await write(bytes([chosen]))
    if chosen == rfb.SECURITY_VNC_AUTH:
        if password is None:
            raise AuthenticationFailed("the VNC server wants a password and the VM has none recorded")
        await write(rfb.vnc_auth_response(password, await read(rfb.CHALLENGE_LENGTH)))
    elif chosen != rfb.SECURITY_NONE:
        raise AuthenticationFailed(f"the VNC server chose security type {chosen}, which bHype does not speak")
    # §7.1.3: 3.8 always sends SecurityResult; 3.3/3.7 only after VNC authentication.
    if chosen == rfb.SECURITY_VNC_AUTH or version == rfb.VERSION_3_8:
        (status,) = struct.unpack(">I", await read(4))
        if status != 0:
            reason = await _reason(read) if version == rfb.VERSION_3_8 else ""
            raise AuthenticationFailed(f"VNC authentication failed{': ' + reason if reason else ''}")
    await write(b"\x01")  # ClientInit, shared-flag = 1: other clients may stay connected
    width, height, _, name_length = rfb.ServerInit.unpack_head(await read(24))
    name = (await read(name_length)).decode("utf-8", errors="replace") if name_length else ""
    await write(rfb.set_pixel_format(pixel_format))
    await write(rfb.set_encodings(encodings if encodings is not None else UPSTREAM_ENCODINGS))
    return Desktop(width, height, pixel_format, name)


def _choose(offered: list[int], password: str | None) -> int:
    if password is not None and rfb.SECURITY_VNC_AUTH in offered:
        return rfb.SECURITY_VNC_AUTH
    if rfb.SECURITY_NONE in offered:
        return rfb.SECURITY_NONE
    if rfb.SECURITY_VNC_AUTH in offered:
        raise AuthenticationFailed("the VNC server wants a password and the VM has none recorded")
    raise AuthenticationFailed(f"the VNC server offers only security types {offered}; bHype speaks 1 and 2")


async def server_handshake(read: ReadExactly, write: Write, desktop: Callable[[], Desktop]) -> bytes:
    """Greet one viewer as its VNC server: security None, then ServerInit for the desktop that
    ``desktop()`` returns (called right before ServerInit is written: the multiplexer registers
    the viewer there, so it misses no update and no resize).

    :returns: the version the viewer chose. :raises rfb.ProtocolError: a client that does not
        speak RFB 3.x or picks a security type other than None.
    """
    await write(rfb.VERSION_3_8)
    major, minor = rfb.parse_version(await read(rfb.VERSION_LENGTH))
    if major != 3:
        raise rfb.ProtocolError(f"unsupported RFB version {major}.{minor}")
    version = rfb.VERSION_3_8 if minor >= 8 else rfb.VERSION_3_7 if minor == 7 else rfb.VERSION_3_3
    if version == rfb.VERSION_3_3:
        await write(struct.pack(">I", rfb.SECURITY_NONE))
    else:
        await write(rfb.security_types([rfb.SECURITY_NONE]))
        (choice,) = await read(1)
        if choice != rfb.SECURITY_NONE:
            if version == rfb.VERSION_3_8:
                await write(rfb.security_result(False, "only security type None is offered"))
            raise rfb.ProtocolError(f"the viewer chose security type {choice}")
        if version == rfb.VERSION_3_8:
            await write(rfb.security_result(True))
    await read(1)  # ClientInit: every viewer shares the one upstream connection anyway
    shown = desktop()
    await write(rfb.ServerInit(shown.width, shown.height, shown.pixel_format, shown.name).pack())
    return version
