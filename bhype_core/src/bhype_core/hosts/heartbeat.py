"""The ``core.host_heartbeat`` sampler: register this host when the worker starts, then heartbeat."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col

from bhype_core.db.task_models import QUEUED, Task
from bhype_core.hosts.registry import UNREACHABLE, beat, host_states, register
from bhype_core.hosts.settings import host_settings
from bhype_core.tasks.outages import OutageLog, is_outage

log = logging.getLogger("bhype.hosts")

TICK = 1.0  # the sampler's own rate; heartbeats go out every host.heartbeat_interval


def mark_waiting(runtime: Any) -> int:
    """Say why tasks queued for an unreachable host wait (their host's scheduler cannot); the
    host's own scheduler replaces the message once it is back. Returns the rows changed."""
    changed = 0
    for state in host_states(runtime):
        if state.state != UNREACHABLE:
            continue
        age = "never" if state.age is None else f"{state.age:.0f} s ago"
        message = f"waiting: host {state.host.name} is unreachable (last heartbeat {age})"
        with runtime.engine.begin() as connection:
            changed += connection.execute(
                update(Task).where(col(Task.state) == QUEUED, col(Task.host) == state.host.name,
                                   col(Task.progress_message).not_like("waiting: host %"))
                .values(progress_message=message[:1000])
            ).rowcount
    return changed


def try_register(runtime: Any) -> bool:
    """Register this host; a database that refuses for now (SQLite busy while the embedded
    server starts, MariaDB restarting) is logged and tried again on the next tick."""
    try:
        register(runtime)
    except SQLAlchemyError as exc:
        log.warning("host registration failed, trying again: %s", str(exc).splitlines()[0])
        return False
    return True


def start(runtime: Any, clock: Callable[[], float] = time.monotonic) -> Callable[[], None]:
    """Register this host now (or on a later tick); the returned tick heartbeats every
    ``host.heartbeat_interval`` and marks tasks waiting for unreachable hosts.

    While Redis or the database restarts a heartbeat fails: that is logged once per outage
    (:class:`OutageLog`), not as a traceback per tick, and the next tick tries again."""
    registered = [try_register(runtime)]
    interval = host_settings(runtime).heartbeat_interval
    last = [clock()]
    outage = OutageLog("host heartbeat", log)

    def tick() -> None:
        if not registered[0]:
            registered[0] = try_register(runtime)
            if not registered[0]:
                return
        now = clock()
        if now - last[0] >= interval:
            last[0] = now
            try:
                beat(runtime)
                mark_waiting(runtime)
            except Exception as exc:
                if not is_outage(exc):
                    raise
                outage.failed(exc)
                return
            outage.ok()

    return tick
