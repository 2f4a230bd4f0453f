"""Built-in plugin ``core_task_cli``: the ``bhype task`` command (list, show, follow, cancel,
retry), a client of the tasks API."""

from __future__ import annotations

from collections.abc import Callable

from bhype_core.hookspecs import hookimpl
from bhype_core.registry import CliCommand


@hookimpl
def bhype_register_cli_commands(register: Callable[[CliCommand], None]) -> None:
    """``bhype task …``."""
    from bhype_core.commands import task

    register(task.command())
