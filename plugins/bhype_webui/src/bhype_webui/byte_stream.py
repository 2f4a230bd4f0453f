"""The little of a byte stream the console bridges need (a socket, a tty, a test double)."""

from __future__ import annotations

from abc import ABC, abstractmethod

READ_SIZE = 65536


class ByteStream(ABC):
    """The little of a stream the bridges need."""

    @abstractmethod
    async def read(self, size: int = READ_SIZE) -> bytes:
        """Some bytes; ``b""`` at end of stream."""

    @abstractmethod
    async def readexactly(self, size: int) -> bytes:
        """Exactly ``size`` bytes (raises ``asyncio.IncompleteReadError`` at end of stream)."""

    @abstractmethod
    async def write(self, data: bytes) -> None:
        """Write all of ``data``."""

    @abstractmethod
    def close(self) -> None:
        """Release the connection or device."""
