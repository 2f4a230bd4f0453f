"""One upstream RFB connection per VM, shared by every browser viewing its console.

bhyve's VNC server serves one client at a time (reference 9.2), so bHype is that one client
and the server of each viewer. Every whole server message (framebuffer updates, bell, cut
text) goes to every viewer; only the viewer in control sends input upstream. bHype drives the
update requests itself: an incremental request after each update, a full one whenever a
viewer joins, asks for one, or fell behind and had its backlog dropped.
"""

from __future__ import annotations

import asyncio
import logging
import struct

from bhype_webui import rfb
from bhype_webui.rfb_handshake import Desktop, client_handshake
from bhype_webui.rfb_updates import read_server_message
from bhype_webui.upstream import ByteStream
from bhype_webui.viewers import Viewer, ViewerSet

log = logging.getLogger("bhype.webui.vnc")

INPUT_MESSAGES = frozenset(
    {rfb.CLIENT_KEY_EVENT, rfb.CLIENT_POINTER_EVENT, rfb.CLIENT_CUT_TEXT, rfb.CLIENT_QEMU}
)


class VncMux:
    """The shared console of one VM (see the module docstring). Lives on the server's event
    loop; every method is called from it."""

    def __init__(self, key: str, stream: ByteStream) -> None:
        self.key = key
        self.stream = stream
        self.viewers = ViewerSet()
        self.desktop: Desktop | None = None
        self.extended_keys = False  # the server announced QEMU extended key events (-258)
        self.closed: str | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self, password: str | None) -> None:
        """Handshake with the VM's server and start relaying its messages.

        :raises rfb.ProtocolError: the server refused us (``AuthenticationFailed``) or spoke
            something else than RFB.
        """
        self.desktop = await client_handshake(self.stream.readexactly, self.stream.write, password)
        await self.request_update(incremental=False)
        self._reader = asyncio.create_task(self._relay(), name=f"vnc-upstream-{self.key}")

    # -- upstream ----------------------------------------------------------------------------

    async def request_update(self, incremental: bool) -> None:
        """Ask the VM's server for the whole screen (changes only when ``incremental``)."""
        assert self.desktop is not None
        message = rfb.fb_update_request(incremental, 0, 0, self.desktop.width, self.desktop.height)
        await self._send_upstream(message)

    async def _send_upstream(self, data: bytes) -> None:
        if self.closed:
            return
        try:
            await self.stream.write(data)
        except (OSError, RuntimeError) as exc:
            log.info("%s: writing to the VNC server failed: %s", self.key, exc)

    async def _relay(self) -> None:
        assert self.desktop is not None
        reason = "the VM's console closed"
        read_parts = getattr(self.stream, "read_parts", None)  # a socket's chunks, uncopied
        try:
            while True:
                message = await read_server_message(
                    self.stream.readexactly, self.desktop.pixel_format.bytes_per_pixel, read_parts
                )
                if message.desktop_size is not None:
                    self.desktop.width, self.desktop.height = message.desktop_size
                if rfb.PSEUDO_QEMU_EXTENDED_KEY in message.pseudo:
                    self.extended_keys = True
                self.broadcast(message.parts)
                if message.kind == rfb.SERVER_FB_UPDATE:
                    await self.request_update(incremental=True)
        except asyncio.IncompleteReadError:
            pass  # end of stream: everything complete has been passed on
        except rfb.ProtocolError as exc:
            reason = f"the VM's VNC server sent something bHype cannot relay: {exc}"
            log.warning("%s: %s", self.key, reason)
        except OSError as exc:
            reason = f"the VM's console connection failed: {exc}"
        finally:
            self.close(reason)

    def broadcast(self, data: bytes | list[bytes]) -> None:
        """Queue ``data`` for every viewer; a viewer that fell behind loses its backlog and gets
        a full refresh instead (a partial screen would stay wrong)."""
        stale = False
        for viewer in list(self.viewers.viewers.values()):
            if not viewer.post(data):
                viewer.drop_pending()
                stale = True
        if stale:
            asyncio.get_running_loop().create_task(self.request_update(incremental=False))

    def close(self, reason: str) -> None:
        """End the upstream connection and, after what is queued, every viewer."""
        if self.closed:
            return
        self.closed = reason
        self.stream.close()
        self.viewers.finish_all(1000, reason)
        if self._reader is not None and self._reader is not asyncio.current_task():
            self._reader.cancel()

    # -- viewers -----------------------------------------------------------------------------

    def join(self, viewer: Viewer) -> Desktop:
        """Register ``viewer`` (called right before its ServerInit is written, so no message is
        lost or duplicated between the two) and return the desktop to announce."""
        assert self.desktop is not None
        self.viewers.add(viewer)
        asyncio.get_running_loop().create_task(self.request_update(incremental=False))
        return Desktop(self.desktop.width, self.desktop.height, self.desktop.pixel_format, self.desktop.name)

    def leave(self, viewer: Viewer) -> None:
        """Forget ``viewer``."""
        self.viewers.remove(viewer)

    async def handle(self, viewer: Viewer, message: bytes) -> None:
        """Act on one whole client message of ``viewer``.

        :raises rfb.ProtocolError: a pixel format other than the shared one (every viewer gets
            the same bytes, so none can have its own format).
        """
        kind = message[0]
        if kind == rfb.CLIENT_SET_PIXEL_FORMAT:
            assert self.desktop is not None
            if rfb.PixelFormat.unpack(message[4:20]) != self.desktop.pixel_format:
                raise rfb.ProtocolError("only the pixel format announced in ServerInit is supported")
        elif kind == rfb.CLIENT_SET_ENCODINGS:
            viewer.encodings = set(rfb.parse_set_encodings(message))
            if self.extended_keys and rfb.PSEUDO_QEMU_EXTENDED_KEY in viewer.encodings:
                # The server announced it once, long before this viewer came: repeat it.
                viewer.post(
                    rfb.framebuffer_update_header(1)
                    + rfb.rectangle_header(0, 0, 0, 0, rfb.PSEUDO_QEMU_EXTENDED_KEY)
                )
        elif kind == rfb.CLIENT_FB_UPDATE_REQUEST:
            if not message[1]:  # incremental requests are already covered by bHype's own loop
                await self.request_update(incremental=False)
        elif kind in INPUT_MESSAGES and self.viewers.in_control(viewer):
            await self._send_upstream(self._input(message))

    def _input(self, message: bytes) -> bytes:
        if message[0] == rfb.CLIENT_QEMU and not self.extended_keys:
            # A scancode event for a server without the extension: keep the keysym part.
            _, _, down, keysym, _ = struct.unpack(">BBHII", message)
            return rfb.key_event(bool(down), keysym)
        return message
