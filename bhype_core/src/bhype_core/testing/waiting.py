"""Waiting in tests for what a real process does: a deadline, never a fixed sleep and an assert."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

POLL = 0.05  # seconds between looks


def wait_for(condition: Callable[[], Any], what: str, timeout: float = 120.0,
             detail: Callable[[], Any] | None = None) -> Any:
    """``condition()``'s first truthy value, looked at until ``timeout`` seconds have passed.

    :raises AssertionError: naming ``what`` (and ``detail()``, when given) at the deadline.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(POLL)
    raise AssertionError(f"timed out waiting for {what}" + (f": {detail()}" if detail else ""))


def running(pid: int) -> bool:
    """Whether ``pid`` is a live process on Linux (a zombie waiting to be reaped is not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] not in "ZX"
