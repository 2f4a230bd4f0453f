"""Server-Sent Event streams for the pages: a poll loop that ends when the browser goes away,
when its login ends, or after ``webui.stream_max_seconds`` (the browser then reconnects through
the core's authentication guard again)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import anyio
from fastapi import Request
from fastapi.responses import StreamingResponse

from bhype_core.plugin_api import sse

# Seconds of silence after which a comment line is sent, so proxies keep the connection open.
KEEPALIVE = 15.0
# The login behind a stream is re-checked every this many polls (at most every KEEPALIVE s).
RECHECK_POLLS = 20
# Milliseconds the browser waits before reconnecting after a stream ended.
RETRY_MS = 1000

__all__ = ["live_response", "session_alive", "sse"]


def session_alive(request: Request) -> Callable[[], bool]:
    """A check that the login behind ``request`` is still live (read-only: it never counts as
    activity). A logout, or a session past its absolute or idle timeout, makes it false; a
    bearer token always passes (revoking one is checked at the next connection)."""
    authenticated = getattr(request.state, "authenticated", None)
    record = getattr(authenticated, "session", None)
    if record is None:
        return lambda: True
    auth = request.app.state.auth

    def alive() -> bool:
        current = auth.sessions.get(record.key)
        if current is None:
            return False
        now = auth.clock()
        return (now - current.created_at < auth.settings.session_absolute_timeout
                and now - current.last_seen_at < auth.settings.session_idle_timeout)

    return alive


async def _events(
    request: Request,
    poll: Callable[[], list[str]],
    interval: float,
    lifetime: float,
    alive: Callable[[], bool],
) -> AsyncIterator[str]:
    yield f"retry: {RETRY_MS}\n\n"
    started = quiet_since = checked = time.monotonic()
    recheck = min(KEEPALIVE, RECHECK_POLLS * interval)
    while True:
        events = await anyio.to_thread.run_sync(poll)
        for event in events:
            yield event
        now = time.monotonic()
        if events:
            quiet_since = now
        if now - checked >= recheck:
            checked = now
            if not await anyio.to_thread.run_sync(alive):
                # The page answers this by going to the login page.
                yield sse("logout", {"reason": "the session has ended"})
                return
        if now - quiet_since >= KEEPALIVE:
            quiet_since = now
            yield ": keep-alive\n\n"
        if now - started >= lifetime or await request.is_disconnected():
            return
        await anyio.sleep(interval)


def live_response(request: Request, runtime: Any, poll: Callable[[], list[str]]) -> StreamingResponse:
    """A ``text/event-stream`` answer that sends what ``poll()`` (blocking, run in a thread)
    returns, every ``webui.stream_poll_seconds``."""
    settings = runtime.settings.section("webui")
    events = _events(request, poll, settings.stream_poll_seconds, settings.stream_max_seconds, session_alive(request))
    return StreamingResponse(
        events, media_type="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
