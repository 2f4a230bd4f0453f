"""Set the command line ``ps`` shows for this process (a supervisor forked by the launcher).

A VM's supervisor is recognised by its command line: ``python -m bhype_core.drivers.supervisor
VM_DIR`` (``state.supervisor_markers``, the pid-reuse guard every status read applies). One
forked by the pre-started launcher (:mod:`bhype_core.drivers.launcher`) inherits the launcher's
command line instead, so it takes the one an exec'd supervisor would have:

- Linux: ``/proc/PID/cmdline`` is the memory between ``arg_start`` and ``arg_end`` of the
  process (proc(5), fields 48 and 49 of ``/proc/PID/stat``): the words are written there, the
  rest of the area filled with NULs. The area cannot grow (moving it needs ``prctl(2)``
  ``PR_SET_MM`` and ``CAP_SYS_RESOURCE``), so the launcher is started with empty arguments that
  reserve room (:data:`ROOM`); the environment that follows the area is never touched.
- FreeBSD: setproctitle(3) with a format starting with ``-`` (the title alone, without the
  program name), which ``ps -o command`` shows.

Elsewhere, or when the words do not fit, :func:`set_title` returns False and the caller falls
back to exec'ing the supervisor.
"""

from __future__ import annotations

import ctypes
import os
import sys
from collections.abc import Sequence

ROOM = 1024  # empty arguments the launcher is started with: bytes for the longest title


def _linux_area() -> tuple[int, int] | None:
    """``(arg_start, arg_end)`` of this process, from ``/proc/self/stat`` (Linux ≥ 3.5)."""
    try:
        with open("/proc/self/stat", "rb") as handle:
            stat = handle.read()
    except OSError:
        return None
    fields = stat.rsplit(b")", 1)[-1].split()  # fields from 3 on (proc(5)); the name may hold spaces
    try:
        start, end = int(fields[48 - 3]), int(fields[49 - 3])
    except (IndexError, ValueError):
        return None
    return (start, end) if 0 < start < end else None


def _set_linux(data: bytes) -> bool:
    area = _linux_area()
    if area is None:
        return False
    start, end = area
    size = end - start
    if len(data) > size:
        return False
    ctypes.memmove(start, data + b"\0" * (size - len(data)), size)
    try:
        with open("/proc/self/cmdline", "rb") as handle:
            shown = handle.read()
    except OSError:
        return False
    return shown.rstrip(b"\0") == data.rstrip(b"\0")


def _set_freebsd(words: Sequence[str]) -> bool:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        setproctitle = libc.setproctitle
    except (OSError, AttributeError):
        return False
    setproctitle(b"-%s", " ".join(words).encode())  # setproctitle(3): "-" drops the program name
    return True


def set_title(words: Sequence[str]) -> bool:
    """Make ``ps`` (and ``/proc/PID/cmdline``) show ``words`` as this process's command line.

    :returns: False when this system cannot, or the words do not fit the area (Linux).
    """
    if any("\0" in word for word in words) or not words:
        return False
    if sys.platform.startswith("linux"):
        return _set_linux(b"".join(os.fsencode(word) + b"\0" for word in words))
    if sys.platform.startswith("freebsd"):
        return _set_freebsd(words)
    return False
