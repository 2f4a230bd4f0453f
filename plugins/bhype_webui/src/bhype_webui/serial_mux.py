"""One reader of a VM's serial console, shared by every browser terminal viewing it.

The QEMU driver's console socket and bhyve's nmdm(4) B side both serve one reader at a time
(reference 9.1: "Allow one attached reader per console and multiplex in bHype"). What the
guest prints goes to every viewer; a viewer joining later first gets the recent output, so
it sees the screen it joins. Every viewer may type (a shared terminal, like a shared tmux).
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque

from bhype_webui.upstream import ByteStream
from bhype_webui.viewers import Viewer, ViewerSet

log = logging.getLogger("bhype.webui.serial")

HISTORY_BYTES = 64 * 1024
# How long the console waits for a slow browser before ending it. Meanwhile the console is not
# read, which holds the guest back like serial flow control would; a stuck tab cannot do so
# for longer than this.
STALL_SECONDS = 5.0


class SerialMux:
    """The shared serial console of one VM. Lives on the server's event loop."""

    def __init__(self, key: str, stream: ByteStream, history_bytes: int = HISTORY_BYTES) -> None:
        self.key = key
        self.stream = stream
        self.viewers = ViewerSet()
        # The recent output as the chunks it came in: appending and trimming whole chunks copies
        # nothing (a bytearray trimmed per read moved 64 KiB each time: issue 15's profile).
        self.history: deque[bytes] = deque()
        self.history_size = 0
        self.history_bytes = history_bytes
        self.closed: str | None = None
        self._reader: asyncio.Task[None] | None = None

    async def start(self) -> None:
        """Start reading the console."""
        self._reader = asyncio.create_task(self._relay(), name=f"serial-upstream-{self.key}")

    async def _relay(self) -> None:
        reason = "the VM's serial console closed"
        try:
            while True:
                data = await self.stream.read()
                if not data:
                    break  # end of stream: everything read has been passed on
                self._remember(data)
                for viewer in list(self.viewers.viewers.values()):
                    if not viewer.post(data) and not await viewer.put(data, STALL_SECONDS):
                        # Dropping bytes would garble a terminal for good: end this one instead.
                        self.viewers.remove(viewer)
                        viewer.finish(1008, "the browser fell too far behind the console output")
        except OSError as exc:
            reason = f"the VM's serial console failed: {exc}"
        finally:
            self.close(reason)

    def _remember(self, data: bytes) -> None:
        """Keep ``data`` in the history, dropping the oldest output beyond its size."""
        self.history.append(data)
        self.history_size += len(data)
        while self.history_size - len(self.history[0]) >= self.history_bytes:
            self.history_size -= len(self.history.popleft())

    def recent_output(self) -> bytes:
        """The last ``history_bytes`` bytes the guest printed."""
        joined = b"".join(self.history)
        return joined[max(0, len(joined) - self.history_bytes) :]

    def close(self, reason: str) -> None:
        """Stop reading and end every viewer after what is queued."""
        if self.closed:
            return
        self.closed = reason
        self.stream.close()
        self.viewers.finish_all(1000, reason)
        if self._reader is not None and self._reader is not asyncio.current_task():
            self._reader.cancel()

    def join(self, viewer: Viewer) -> None:
        """Register ``viewer`` and queue the recent output for it first."""
        if self.history:
            viewer.post(self.recent_output())
        self.viewers.add(viewer)

    def leave(self, viewer: Viewer) -> None:
        """Forget ``viewer``."""
        self.viewers.remove(viewer)

    async def handle(self, viewer: Viewer, data: bytes) -> None:
        """Type what ``viewer`` sent."""
        if self.closed or not data:
            return
        try:
            await self.stream.write(data)
        except OSError as exc:
            log.info("%s: writing to the serial console failed: %s", self.key, exc)
