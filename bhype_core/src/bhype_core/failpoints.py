"""Failpoints: a crash-safety test kills the real worker at a named step (issue 11).

A process whose environment lists a point in ``BHYPE_FAILPOINTS`` (comma-separated names) sends
itself SIGKILL when it reaches that point: a genuine ``kill -9`` at exactly that step, with no
chance to clean up, which a timed kill from outside cannot aim at. Every intent a task records
is a point (``intent:<undo action>``, right after the intent is committed), and so is every host
command the runner completes (``after:<program> <first argument>``, e.g. ``after:zfs clone``);
a few steps name their own. Production never sets the variable: a point then costs one environment lookup.
"""

from __future__ import annotations

import logging
import os
import signal

ENV = "BHYPE_FAILPOINTS"

log = logging.getLogger("bhype.failpoints")


def reached(name: str) -> None:
    """Die at once by SIGKILL if ``name`` is one of the failpoints this process was given."""
    points = os.environ.get(ENV)
    if points and name in points.split(","):
        log.warning("failpoint %s reached: killing this process (pid %d)", name, os.getpid())
        os.kill(os.getpid(), signal.SIGKILL)
