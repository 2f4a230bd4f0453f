"""A task's live log and progress as Server-Sent Events (``text/event-stream``)."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio

from bhype_core.db.task_models import FINAL_STATES, Task, TaskLog
from bhype_core.tasks import store

if TYPE_CHECKING:
    from bhype_core.runtime import Runtime

# Seconds of silence after which a comment line is sent, so proxies keep the connection open.
KEEPALIVE = 15.0
# Log lines read per poll; a task that logged more sends the rest on the next polls.
BATCH = 500


def sse(event: str, data: Any, event_id: int | None = None) -> str:
    """One Server-Sent Event (data is JSON on one line)."""
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}event: {event}\ndata: {json.dumps(data, separators=(',', ':'), default=str)}\n\n"


def _read(runtime: Runtime, task_id: str, after: int) -> tuple[Task | None, list[TaskLog]]:
    # The task first, then its log: a task seen finished has all its lines written already.
    task = store.get_task(runtime.engine, task_id)
    return task, store.read_log(runtime.engine, task_id, after=after, limit=BATCH)


async def task_events(
    runtime: Runtime,
    task_id: str,
    after: int,
    interval: float,
    is_disconnected: Callable[[], Awaitable[bool]],
    public: Callable[[Task], Any],
) -> AsyncIterator[str]:
    """Events for ``task_id`` until it ends or the client goes away.

    :param after: the last log seq the client has (``Last-Event-ID``); later lines follow.
    :param interval: seconds between looks at the database.
    :param public: turns the finished Task row into the ``end`` event's data.
    """
    last_progress: tuple[Any, ...] | None = None
    quiet_since = time.monotonic()
    while True:
        task, lines = await anyio.to_thread.run_sync(_read, runtime, task_id, after)
        if task is None:  # deleted while streaming
            yield sse("end", None)
            return
        sent = bool(lines)
        for line in lines:
            after = line.seq
            yield sse("log", {"seq": line.seq, "time": line.time.isoformat(), "level": line.level,
                              "message": line.message}, line.seq)
        progress = (task.state, task.progress, task.progress_message)
        if progress != last_progress:
            last_progress, sent = progress, True
            yield sse("progress", {"state": task.state, "progress": task.progress,
                                   "message": task.progress_message})
        if sent:
            quiet_since = time.monotonic()
        if len(lines) == BATCH:
            continue  # more lines are waiting: no pause
        if task.state in FINAL_STATES:
            yield sse("end", public(task).model_dump(mode="json"))
            return
        if await is_disconnected():
            return
        if time.monotonic() - quiet_since >= KEEPALIVE:
            quiet_since = time.monotonic()
            yield ": keep-alive\n\n"
        await anyio.sleep(interval)
