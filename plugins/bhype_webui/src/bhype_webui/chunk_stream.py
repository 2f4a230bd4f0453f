"""A connected stream socket read as the chunks the kernel hands over, without copying them.

``asyncio.StreamReader`` copies every byte twice (into its buffer, and out of it) and, when a
read asks for more than its limit (a 3 MiB raw VNC frame), pauses and resumes the socket once
per chunk. The consoles relay bulk data, so this protocol keeps the received ``bytes`` objects
as they are in a deque: a serial read hands one over untouched, a VNC rectangle is passed on
as its chunks (:meth:`ChunkStream.read_parts`), and only small RFB headers are ever joined.
Profiled in issue 15: copies and pause/resume were most of the bridge's CPU per GB.
"""

from __future__ import annotations

import asyncio
from collections import deque

from bhype_webui.byte_stream import ByteStream

# Reading stops while this much is received but not yet taken (flow control towards the VM's
# server); large enough that a full 1024x768 raw frame never pauses the socket.
HIGH_WATER = 4 * 1024 * 1024


class _ChunkProtocol(asyncio.Protocol):
    """Collects received chunks; wakes the one waiting reader; tracks write flow control."""

    def __init__(self) -> None:
        self.chunks: deque[bytes] = deque()
        self.offset = 0  # bytes of chunks[0] already taken (slicing it would copy the rest)
        self.size = 0
        self.eof = False
        self.error: BaseException | None = None
        self.transport: asyncio.Transport | None = None
        self.paused = False
        self.waiter: asyncio.Future[None] | None = None
        self.writable = asyncio.Event()
        self.writable.set()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.chunks.append(data)
        self.size += len(data)
        if self.size > HIGH_WATER and not self.paused and self.transport is not None:
            self.paused = True
            self.transport.pause_reading()
        self._wake()

    def eof_received(self) -> bool:
        self.eof = True
        self._wake()
        return False  # close our side too: a console is over once its server hung up

    def connection_lost(self, exc: Exception | None) -> None:
        self.eof = True
        self.error = exc
        self.writable.set()
        self._wake()

    def pause_writing(self) -> None:
        self.writable.clear()

    def resume_writing(self) -> None:
        self.writable.set()

    def _wake(self) -> None:
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_result(None)

    def taken(self, count: int) -> None:
        self.size -= count
        if self.paused and self.size <= HIGH_WATER // 2 and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()

    async def wait(self) -> None:
        """Until more data, end of stream or an error arrives."""
        self.waiter = asyncio.get_running_loop().create_future()
        try:
            await self.waiter
        finally:
            self.waiter = None


class ChunkStream(ByteStream):
    """A TCP or unix stream socket (see the module docstring)."""

    def __init__(self, transport: asyncio.Transport, protocol: _ChunkProtocol) -> None:
        self.transport = transport
        self.protocol = protocol

    async def _more(self) -> bool:
        """Wait for data; ``False`` at end of stream (an error is raised instead)."""
        protocol = self.protocol
        while not protocol.chunks:
            if protocol.eof:
                if protocol.error is not None:
                    raise protocol.error
                return False
            await protocol.wait()
        return True

    def _take(self, limit: int) -> bytes:
        """What is left of the first chunk, or its next ``limit`` bytes."""
        protocol = self.protocol
        chunk, offset = protocol.chunks[0], protocol.offset
        end = offset + limit
        if end >= len(chunk):
            protocol.chunks.popleft()
            protocol.offset = 0
            if offset:
                chunk = chunk[offset:]
        else:
            chunk = chunk[offset:end]
            protocol.offset = end
        protocol.taken(len(chunk))
        return chunk

    async def read(self, size: int = 1 << 30) -> bytes:
        if not await self._more():
            return b""
        return self._take(size)

    async def read_parts(self, size: int) -> list[bytes]:
        """Exactly ``size`` bytes as the chunks they came in (nothing joined).

        :raises asyncio.IncompleteReadError: the stream ended first.
        """
        parts: list[bytes] = []
        left = size
        while left:
            if not await self._more():
                raise asyncio.IncompleteReadError(b"".join(parts), size)
            part = self._take(left)
            parts.append(part)
            left -= len(part)
        return parts

    async def readexactly(self, size: int) -> bytes:
        protocol = self.protocol
        if protocol.chunks and len(protocol.chunks[0]) - protocol.offset >= size:
            return self._take(size)  # the common case: no waiting, no join
        parts = await self.read_parts(size)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    async def write(self, data: bytes) -> None:
        if self.protocol.error is not None or self.transport.is_closing():
            raise ConnectionResetError("the console connection is closed")
        self.transport.write(data)
        await self.protocol.writable.wait()

    def close(self) -> None:
        self.transport.close()


async def connect_tcp(host: str, port: int) -> ChunkStream:
    """Connect to ``host``:``port``."""
    transport, protocol = await asyncio.get_running_loop().create_connection(_ChunkProtocol, host, port)
    return ChunkStream(transport, protocol)  # type: ignore[arg-type]


async def connect_unix(path: str) -> ChunkStream:
    """Connect to the unix socket at ``path``."""
    transport, protocol = await asyncio.get_running_loop().create_unix_connection(_ChunkProtocol, path)
    return ChunkStream(transport, protocol)  # type: ignore[arg-type]


async def adopt(sock: object, unix: bool) -> ChunkStream:
    """Wrap an already connected non-blocking socket (one the console broker handed over)."""
    loop = asyncio.get_running_loop()
    if unix:
        transport, protocol = await loop.create_unix_connection(_ChunkProtocol, sock=sock)  # type: ignore[arg-type]
    else:
        transport, protocol = await loop.create_connection(_ChunkProtocol, sock=sock)  # type: ignore[arg-type]
    return ChunkStream(transport, protocol)  # type: ignore[arg-type]
