"""One upstream RFB connection per VM, shared by every browser viewing its console.

bhyve's VNC server serves one client at a time (reference 9.2), so bHype is that one client
and the server of each viewer. Every whole server message (framebuffer updates, bell, cut
text) goes to every viewer; only the viewer in control sends input upstream. bHype drives the
update requests itself: an incremental request after each update, a full one whenever a
viewer joins, asks for one, or fell behind and had its backlog dropped.

While every viewer has announced Tight (noVNC does), the multiplexer asks the server for it:
a shared screen then costs a fraction of the bytes. A viewer that missed Tight rectangles (it
joined after they started, or its backlog was dropped) gets none until the multiplexer has
reconnected to the server and reset everyone's zlib streams (rfb_tight.py); a viewer without
Tight turns it off for all and skips what was still in flight (a full refresh follows).
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Awaitable, Callable

from bhype_webui import rfb
from bhype_webui.rfb_handshake import Desktop, client_handshake
from bhype_webui.rfb_tight import TightState, tpixel_size
from bhype_webui.rfb_updates import UPSTREAM_ENCODINGS, UPSTREAM_ENCODINGS_TIGHT, ServerMessage, read_server_message
from bhype_webui.upstream import ByteStream
from bhype_webui.viewers import Viewer, ViewerSet

Reopen = Callable[[], Awaitable[ByteStream]]

log = logging.getLogger("bhype.webui.vnc")

INPUT_MESSAGES = frozenset(
    {rfb.CLIENT_KEY_EVENT, rfb.CLIENT_POINTER_EVENT, rfb.CLIENT_CUT_TEXT, rfb.CLIENT_QEMU}
)


class VncMux:
    """The shared console of one VM (see the module docstring). Lives on the server's event
    loop; every method is called from it."""

    def __init__(self, key: str, stream: ByteStream, reopen: Reopen | None = None) -> None:
        self.key = key
        self.stream = stream
        # Opens a new connection to the same server: needed to reset Tight's zlib streams, so
        # without it the multiplexer never asks for Tight.
        self.reopen = reopen
        self.password: str | None = None
        self.tight_on = False  # Tight is in the encodings last sent upstream
        self.generation = 0  # upstream connections so far (Tight streams start fresh in each)
        self.tight_used = False  # a Tight rectangle was relayed on this connection
        self.tight_state = TightState()
        self._reset_wanted = False
        self._refresh_wanted = False
        self._held: list[bytes] | None = None  # input kept back while reconnecting
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
        self.password = password
        self.desktop = await client_handshake(
            self.stream.readexactly, self.stream.write, password, encodings=UPSTREAM_ENCODINGS
        )
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
        if self._held is not None:
            self._held.append(data)  # the handshake of a new connection is in progress
            return
        try:
            await self.stream.write(data)
        except (OSError, RuntimeError) as exc:
            log.info("%s: writing to the VNC server failed: %s", self.key, exc)

    async def _relay(self) -> None:
        assert self.desktop is not None
        reason = "the VM's console closed"
        tight = (tpixel_size(self.desktop.pixel_format), self.tight_state)
        try:
            while True:
                read_parts = getattr(self.stream, "read_parts", None)  # a socket's chunks, uncopied
                message = await read_server_message(
                    self.stream.readexactly, self.desktop.pixel_format.bytes_per_pixel, read_parts, tight
                )
                if message.desktop_size is not None:
                    self.desktop.width, self.desktop.height = message.desktop_size
                if rfb.PSEUDO_QEMU_EXTENDED_KEY in message.pseudo:
                    self.extended_keys = True
                self._relay_message(message)
                if self._reset_wanted and self.reopen is not None:
                    await self._reconnect()
                    tight = (tight[0], self.tight_state)
                elif message.kind == rfb.SERVER_FB_UPDATE:
                    await self.request_update(incremental=not self._refresh_wanted)
                    self._refresh_wanted = False
        except asyncio.IncompleteReadError:
            pass  # end of stream: everything complete has been passed on
        except rfb.ProtocolError as exc:
            reason = f"the VM's VNC server sent something bHype cannot relay: {exc}"
            log.warning("%s: %s", self.key, reason)
        except OSError as exc:
            reason = f"the VM's console connection failed: {exc}"
        finally:
            self.close(reason)

    def _relay_message(self, message: ServerMessage) -> None:
        """Pass ``message`` on; a Tight one only to viewers in step with the zlib streams."""
        if not message.tight:
            self.broadcast(message.data)
            return
        self.tight_used = True
        for viewer in list(self.viewers.viewers.values()):
            if viewer.tight_generation != self.generation:
                self._missed(viewer)
            elif not viewer.post(message.data):
                viewer.drop_pending()
                self._missed(viewer)

    def _missed(self, viewer: Viewer) -> None:
        """``viewer`` lacks part of the screen: a Tight viewer needs reset streams, any other a
        full refresh (once the encodings upstream no longer include Tight)."""
        viewer.tight_generation = None
        if rfb.ENCODING_TIGHT in viewer.encodings:
            self._reset_wanted = True
        else:
            self._refresh_wanted = True

    async def _reconnect(self) -> None:
        """A new connection to the server: Tight streams start afresh for every viewer."""
        assert self.reopen is not None and self.desktop is not None
        self._held = []
        self.stream.close()
        try:
            self.stream = await self.reopen()
            desktop = await client_handshake(
                self.stream.readexactly, self.stream.write, self.password, encodings=self._encodings()
            )
        except BaseException:
            self._held = None
            raise
        self.desktop.width, self.desktop.height = desktop.width, desktop.height
        self.generation += 1
        self.tight_used = False
        self.tight_state.reset_next = True  # noVNC resets its four streams at the first one
        self._reset_wanted = self._refresh_wanted = False
        for viewer in self.viewers.viewers.values():
            if rfb.ENCODING_TIGHT in viewer.encodings:
                viewer.tight_generation = self.generation
        held, self._held = self._held, None
        for data in held:
            await self._send_upstream(data)
        await self.request_update(incremental=False)

    def _encodings(self) -> list[int]:
        return UPSTREAM_ENCODINGS_TIGHT if self.tight_on else UPSTREAM_ENCODINGS

    async def _choose_encodings(self) -> None:
        """Ask for Tight exactly while every viewer has announced it."""
        viewers = list(self.viewers.viewers.values())
        wanted = self.reopen is not None and bool(viewers) and all(rfb.ENCODING_TIGHT in v.encodings for v in viewers)
        if wanted != self.tight_on:
            self.tight_on = wanted
            await self._send_upstream(rfb.set_encodings(self._encodings()))
            await self.request_update(incremental=False)

    def broadcast(self, data: bytes) -> None:
        """Queue ``data`` for every viewer; a viewer that fell behind loses its backlog and gets
        a full refresh instead (a partial screen would stay wrong)."""
        stale = False
        for viewer in list(self.viewers.viewers.values()):
            if not viewer.post(data):
                viewer.drop_pending()
                stale = True
                if self.tight_used:
                    self._missed(viewer)  # Tight rectangles may have been in the dropped backlog
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
        """Forget ``viewer`` (the others may now all take Tight)."""
        self.viewers.remove(viewer)
        if self.viewers.viewers and not self.closed:
            asyncio.get_running_loop().create_task(self._choose_encodings())

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
            if rfb.ENCODING_TIGHT in viewer.encodings:
                if self.tight_used:
                    self._missed(viewer)  # it joins streams that started without it
                else:
                    viewer.tight_generation = self.generation
            await self._choose_encodings()
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
