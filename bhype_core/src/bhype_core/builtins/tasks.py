"""Built-in plugin ``core_tasks``: the core's own task kinds (``core.ping``) and the task
queue's ``[tasks]`` settings section."""

from __future__ import annotations

import math
import os
import socket
import time
from collections.abc import Callable
from typing import Any

from bhype_core.errors import BhypeError, ValidationErrors
from bhype_core.hookspecs import hookimpl
from bhype_core.registry import SettingsSection, TaskKind
from bhype_core.tasks import TaskContext
from bhype_core.tasks.settings import SECTION, TaskSettings

MAX_SLEEP = 600.0  # seconds; ping is a diagnostic, not a way to park a worker for hours
SLEEP_STEP = 0.1  # seconds between progress reports while sleeping


class PingFailed(BhypeError):
    """``core.ping`` was asked to fail (tests and diagnostics of the error path)."""

    code = "ping_failed"


def ping(
    context: TaskContext,
    echo: Any = None,
    sleep: float = 0,
    fail: str | None = None,
    locks: list[str] | None = None,
) -> dict[str, Any]:
    """Answer from the worker: proves a task crossed the queue and ran there.

    :param echo: any JSON value, returned unchanged.
    :param sleep: seconds to spend before answering (0–600), reporting progress and honouring
        a cancel between steps; used to see a task running (locks, cancel, graceful shutdown,
        crash tests).
    :param fail: when given, fail with this message instead of answering.
    :param locks: resources (``vm:3``) to hold while running (see :func:`ping_locks`), to see
        the scheduler's locks at work.
    :returns: ``pong``, the worker's ``pid`` and ``host``, ``echo``, the ``user`` and
        ``task_id`` the worker saw.
    """
    errors = ValidationErrors()
    if isinstance(sleep, bool) or not isinstance(sleep, (int, float)) or not (
        math.isfinite(sleep) and 0 <= sleep <= MAX_SLEEP
    ):
        errors.add("sleep", f"must be a number of seconds from 0 to {MAX_SLEEP:g}, not {sleep!r}")
    if fail is not None and not isinstance(fail, str):
        errors.add("fail", f"must be a message (string) or null, not {type(fail).__name__}")
    errors.raise_if_any()

    context.log(f"ping from {context.user or 'system'}")
    if sleep:
        context.log(f"sleeping {sleep:g} s")
        _sleep_with_progress(context, float(sleep))
    if fail is not None:
        raise PingFailed(fail)
    context.progress(100, "pong")
    return {
        "pong": True,
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "echo": echo,
        "user": context.user,
        "task_id": context.task_id,
    }


def _sleep_with_progress(
    context: TaskContext, seconds: float, clock: Callable[[], float] = time.monotonic
) -> None:
    # Short steps keep the task responsive: each one is a safe point for a cancel. Progress is
    # reported only when the whole percentage changes, so the Task row is not flooded.
    start = clock()
    reported = -1
    while (elapsed := clock() - start) < seconds:
        context.check_cancelled()
        percent = min(99, int(100 * elapsed / seconds))
        if percent != reported:
            context.progress(percent, "sleeping")
            reported = percent
        time.sleep(min(SLEEP_STEP, seconds - elapsed))


def ping_locks(arguments: dict[str, Any]) -> list[str]:
    """The locks ``core.ping`` holds: its ``locks`` argument.

    :raises ValidationErrors: ``locks`` is not a list of strings.
    """
    locks = arguments.get("locks") or []
    if not isinstance(locks, list) or not all(isinstance(lock, str) for lock in locks):
        raise ValidationErrors([("locks", "must be a list of resource names such as 'vm:3'")])
    return locks


@hookimpl
def bhype_register_tasks(register: Callable[[TaskKind], None]) -> None:
    """The core's task kinds: ``core.ping``, a harmless diagnostic any user may run (it runs no
    host command; the locks it may hold only make other tasks wait, for at most its 600 s sleep)."""
    register(TaskKind(
        name="core.ping",
        run=ping,
        role="operator",
        system=True,  # harmless (no host command): the system may ping itself too
        description="answer from the worker (pid, host, echo); optional sleep, locks or failure for diagnostics",
        locks=ping_locks,
    ))


@hookimpl
def bhype_register_settings(register: Callable[[SettingsSection], None]) -> None:
    """``[tasks]``: per-user and overall limits and timing of the task queue."""
    register(SettingsSection(name=SECTION, model=TaskSettings))
