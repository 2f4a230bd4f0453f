"""One viewer's console connection: its sender, its receiver, and the periodic access check.

The three run side by side; whichever ends first ends the others. The sender stops only at
the ``None`` a viewer's queue gets when it must finish, after sending what was queued before
it (a bridge must drain to the end before closing: reference linux-test-host.md, "noVNC and
the WebSocket bridge"), and then closes the WebSocket with the viewer's code and reason.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from bhype_webui import rfb
from bhype_webui.channel import CLOSE_POLICY, CLOSE_PROTOCOL_ERROR, WebSocketChannel
from bhype_webui.rfb_handshake import server_handshake
from bhype_webui.serial_mux import SerialMux
from bhype_webui.viewers import Viewer
from bhype_webui.vnc_mux import VncMux

Recheck = Callable[[], Awaitable[str | None]]


async def _send(channel: WebSocketChannel, viewer: Viewer) -> None:
    while (data := await viewer.take()) is not None:
        if not await channel.send(data):
            return  # the browser went away
    await channel.close(viewer.close_code, viewer.close_reason)


async def _watch(viewer: Viewer, recheck: Recheck, interval: float) -> None:
    while True:
        await asyncio.sleep(interval)
        reason = await recheck()
        if reason is not None:
            viewer.finish(CLOSE_POLICY, f"access revoked: {reason}")
            return


async def _vnc_input(channel: WebSocketChannel, mux: VncMux, viewer: Viewer) -> None:
    buffer = bytearray()
    try:
        while data := await channel.receive():
            buffer += data
            while (length := rfb.client_message_length(buffer)) is not None:
                message = bytes(buffer[:length])
                del buffer[:length]
                await mux.handle(viewer, message)
    except rfb.ProtocolError as exc:
        viewer.finish(CLOSE_PROTOCOL_ERROR, str(exc))
        await asyncio.Event().wait()  # let the sender close with that reason


async def _serial_input(channel: WebSocketChannel, mux: SerialMux, viewer: Viewer) -> None:
    while data := await channel.receive():
        await mux.handle(viewer, data)


async def _run(
    channel: WebSocketChannel, viewer: Viewer, receiver: Awaitable[None], recheck: Recheck, interval: float
) -> None:
    tasks = [
        asyncio.ensure_future(_send(channel, viewer)),
        asyncio.ensure_future(receiver),
        asyncio.ensure_future(_watch(viewer, recheck, interval)),
    ]
    try:
        done, _ = await asyncio.wait(tasks[:2], return_when=asyncio.FIRST_COMPLETED)
        for task in done:
            task.result()  # a failure inside surfaces here (and in the server log)
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await channel.close(viewer.close_code, viewer.close_reason)


async def serve_vnc(
    channel: WebSocketChannel, mux: VncMux, viewer: Viewer, recheck: Recheck, interval: float
) -> None:
    """Greet the viewer as its VNC server, then relay until someone ends it.

    :raises rfb.ProtocolError: the viewer did not speak RFB (the caller closes the socket).
    """
    await server_handshake(channel.readexactly, channel.send, lambda: mux.join(viewer))
    await _run(channel, viewer, _vnc_input(channel, mux, viewer), recheck, interval)


async def serve_serial(
    channel: WebSocketChannel, mux: SerialMux, viewer: Viewer, recheck: Recheck, interval: float
) -> None:
    """Relay the serial console to and from the viewer until someone ends it."""
    mux.join(viewer)
    await _run(channel, viewer, _serial_input(channel, mux, viewer), recheck, interval)
