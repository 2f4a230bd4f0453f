"""A browser's console WebSocket as a byte stream: subprotocol choice, buffered reads, sends.

noVNC ≥ 1.3 offers no subprotocol, older clients offer ``binary``; Chromium drops a socket
whose server picked a subprotocol it did not offer (reference linux-test-host.md, "noVNC and
the WebSocket bridge"), so ``binary`` is chosen only when offered.
"""

from __future__ import annotations

import asyncio

from starlette.websockets import WebSocket, WebSocketDisconnect, WebSocketState

# WebSocket close codes (RFC 6455 §7.4.1) the consoles use.
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_POLICY = 1008
CLOSE_INTERNAL = 1011


def chosen_subprotocol(offered: list[str]) -> str | None:
    """``binary`` if the client offered it, else none at all."""
    return "binary" if "binary" in offered else None


class WebSocketChannel:
    """Bytes in and out of one accepted WebSocket (text frames are taken as UTF-8 bytes)."""

    def __init__(self, websocket: WebSocket) -> None:
        self.websocket = websocket
        self.buffer = bytearray()
        self.ended = False

    @classmethod
    async def accept(cls, websocket: WebSocket) -> WebSocketChannel:
        """Accept the handshake with the right subprotocol."""
        offered = list(websocket.scope.get("subprotocols") or [])
        await websocket.accept(subprotocol=chosen_subprotocol(offered))
        return cls(websocket)

    async def receive(self) -> bytes:
        """The next message's bytes (buffered ones first); ``b""`` once the client is gone."""
        if self.buffer:
            data, self.buffer = bytes(self.buffer), bytearray()
            return data
        if self.ended:
            return b""
        try:
            message = await self.websocket.receive()
        except (WebSocketDisconnect, RuntimeError):
            self.ended = True
            return b""
        if message["type"] == "websocket.disconnect":
            self.ended = True
            return b""
        if message.get("bytes") is not None:
            return message["bytes"]
        return (message.get("text") or "").encode()

    async def readexactly(self, size: int) -> bytes:
        """Exactly ``size`` bytes, across as many messages as it takes."""
        while len(self.buffer) < size:
            chunk = await self.receive()
            if not chunk:
                raise asyncio.IncompleteReadError(bytes(self.buffer), size)
            self.buffer += chunk
        data, self.buffer = bytes(self.buffer[:size]), self.buffer[size:]
        return data

    async def send(self, data: bytes) -> bool:
        """One binary message; ``False`` when the client is gone (nothing more can be sent)."""
        if self.ended:
            return False
        try:
            await self.websocket.send_bytes(data)
        except (WebSocketDisconnect, RuntimeError, OSError):
            self.ended = True
            return False
        return True

    async def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Close unless already closed; a reason is cut to the 123 bytes a close frame allows."""
        if self.ended or self.websocket.application_state == WebSocketState.DISCONNECTED:
            return
        self.ended = True
        try:
            await self.websocket.close(code, reason.encode()[:123].decode(errors="ignore"))
        except (WebSocketDisconnect, RuntimeError, OSError):
            pass  # the client vanished meanwhile
