"""Argv checks shared by the runner and the VM supervisor.

A module of its own, importing nothing heavy: the per-VM supervisor checks the hypervisor's
argv before it spawns it, and importing the whole runner (pipelines, streaming, audit) for that
cost the supervisor's start-up time on every VM start (issue 15). ``bhype_core.host.runner``
re-exports both names, so callers keep importing them from there.
"""

from __future__ import annotations

from collections.abc import Sequence

from bhype_core.errors import BhypeError


class ArgvError(BhypeError, ValueError):
    """A runner was asked to run something that is not a non-empty list of strings.

    This is a programming error inside bHype (callers build argv lists), so it is also a
    ``ValueError``; nothing has run when it is raised.
    """

    code = "invalid_argv"


def validate_argv(argv: object) -> list[str]:
    """Check that ``argv`` is a non-empty list/tuple of non-empty-program strings without NUL.

    :raises ArgvError: naming the offending item; nothing is run.
    """
    if isinstance(argv, (str, bytes)) or not isinstance(argv, Sequence):
        raise ArgvError(f"argv must be a list of strings, not {type(argv).__name__} (no shell strings)")
    if not argv:
        raise ArgvError("argv must not be empty")
    for index, item in enumerate(argv):
        if not isinstance(item, str):
            raise ArgvError(f"argv[{index}] must be a str, not {type(item).__name__} ({item!r})")
        if "\0" in item:
            raise ArgvError(f"argv[{index}] contains a NUL character")
    if not argv[0]:
        raise ArgvError("argv[0] (the program) must not be empty")
    return list(argv)
