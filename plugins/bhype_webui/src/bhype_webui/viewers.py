"""The viewers of one console: their outgoing queues, and who is in control of the input.

Control rules (issue 6, "Consoles"): the first viewer gets control; anyone may take it from
nobody, from a viewer of their own, or from an operator; only an admin may take it from an
admin. An operator can reach only their own VMs' consoles, so "another operator" is always
the same account in another tab.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from dataclasses import dataclass, field
from typing import Any

from bhype_core.plugin_api import Conflict, NotFound

# A viewer whose browser falls this far behind is treated as slow (see the muxes): a bound in
# messages and one in bytes (a VNC full frame is 3 MiB at 1024x768).
QUEUE_LIMIT = 256
QUEUE_BYTES = 16 * 1024 * 1024


def new_viewer_id() -> str:
    """An unguessable viewer id (it names the viewer in the take-control call)."""
    return secrets.token_urlsafe(12)


@dataclass(eq=False)
class Viewer:
    """One connected browser: who it is, and what is waiting to be sent to it."""

    id: str
    user: str
    admin: bool
    joined: float = field(default_factory=time.time)
    queue: asyncio.Queue[bytes | None] = field(default_factory=lambda: asyncio.Queue(QUEUE_LIMIT))
    encodings: set[int] = field(default_factory=set)
    # The upstream connection ("generation") whose Tight zlib streams this viewer has followed
    # from their start; ``None``: it missed some, so it may not get Tight rectangles now.
    tight_generation: int | None = None
    close_code: int = 1000
    close_reason: str = ""
    queued_bytes: int = 0

    def post(self, data: bytes) -> bool:
        """Queue ``data``; ``False`` when the queue is full (the viewer is behind)."""
        if self.queued_bytes and self.queued_bytes + len(data) > QUEUE_BYTES:
            return False
        try:
            self.queue.put_nowait(data)
        except asyncio.QueueFull:
            return False
        self.queued_bytes += len(data)
        return True

    async def put(self, data: bytes, timeout: float) -> bool:
        """Queue ``data``, waiting up to ``timeout`` seconds for room; ``False`` if none came."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self.post(data):
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.01)  # the sender frees room as the browser takes data
        return True

    async def take(self) -> bytes | None:
        """The next thing to send (``None``: finish now)."""
        data = await self.queue.get()
        if data is not None:
            self.queued_bytes -= len(data)
        return data

    def drop_pending(self) -> None:
        """Forget everything not yet sent (a full refresh follows)."""
        while not self.queue.empty():
            self.queue.get_nowait()
        self.queued_bytes = 0

    def finish(self, code: int, reason: str) -> None:
        """Ask its sender to stop after what is queued, then close with ``code``/``reason``."""
        self.close_code, self.close_reason = code, reason
        try:
            self.queue.put_nowait(None)
        except asyncio.QueueFull:
            self.drop_pending()  # it is stuck anyway: the close matters more than the backlog
            self.queue.put_nowait(None)


class ViewerSet:
    """Viewers by id, and the one in control."""

    def __init__(self) -> None:
        self.viewers: dict[str, Viewer] = {}
        self.controller: str | None = None

    def __len__(self) -> int:
        return len(self.viewers)

    def add(self, viewer: Viewer, *, give_control: bool = True) -> None:
        """Register ``viewer``; it takes control if nobody has it."""
        self.viewers[viewer.id] = viewer
        if give_control and self.controller is None:
            self.controller = viewer.id

    def remove(self, viewer: Viewer) -> None:
        """Forget ``viewer``; control becomes free if it had it."""
        self.viewers.pop(viewer.id, None)
        if self.controller == viewer.id:
            self.controller = None

    def in_control(self, viewer: Viewer) -> bool:
        return self.controller == viewer.id

    def take_control(self, viewer_id: str, user: str, admin: bool) -> None:
        """Give control to viewer ``viewer_id`` of ``user``.

        :raises NotFound: no such viewer of this user on this console.
        :raises Conflict: an admin holds control and the caller is not an admin.
        """
        viewer = self.viewers.get(viewer_id)
        if viewer is None or viewer.user != user:
            raise NotFound("no such viewer of yours on this console (it may have disconnected)")
        holder = self.viewers.get(self.controller) if self.controller else None
        if holder is not None and holder.id != viewer.id and holder.admin and not admin:
            raise Conflict(f"{holder.user} (an admin) is in control; only an admin can take over")
        self.controller = viewer.id

    def describe(self) -> list[dict[str, Any]]:
        """The viewers as the API lists them (oldest first)."""
        return [
            {
                "id": v.id,
                "user": v.user,
                "admin": v.admin,
                "in_control": v.id == self.controller,
                "joined": v.joined,
            }
            for v in sorted(self.viewers.values(), key=lambda v: v.joined)
        ]

    def finish_all(self, code: int, reason: str) -> None:
        """End every viewer (the upstream went away)."""
        for viewer in list(self.viewers.values()):
            viewer.finish(code, reason)
