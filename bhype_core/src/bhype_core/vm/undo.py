"""An undo stack for multi-step host changes: on failure every step done so far is reversed."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from bhype_core.errors import NotFound

log = logging.getLogger("bhype.vm")


class Undo:
    """Remember how to reverse each completed step; :meth:`rollback` runs them newest first.

    A reversal that fails is logged to the task and the worker log and the others still run,
    so one stuck file cannot leave the rest behind; :attr:`failures` lists what could not be
    undone. A reversal finding its object already gone (:class:`NotFound`) counts as done.
    """

    def __init__(self, context: Any = None) -> None:
        self.context = context
        self.steps: list[tuple[str, Callable[[], Any]]] = []
        self.failures: list[str] = []

    def push(self, description: str, action: Callable[[], Any]) -> None:
        """Register how to reverse the step that just succeeded."""
        self.steps.append((description, action))

    def _log(self, message: str) -> None:
        if self.context is not None:
            self.context.log(message)
        else:
            log.info("%s", message)

    def rollback(self) -> list[str]:
        """Reverse every registered step, newest first; returns what could not be undone."""
        while self.steps:
            description, action = self.steps.pop()
            try:
                action()
                self._log(f"rolled back: {description}")
            except NotFound:
                self._log(f"rolled back: {description} (already gone)")
            except Exception as exc:  # keep undoing the rest; report this one
                message = f"could not roll back {description}: {type(exc).__name__}: {exc}"
                log.exception("%s", message)
                self._log(message)
                self.failures.append(message)
        return self.failures

    def discard(self) -> None:
        """Forget the steps: the whole change succeeded."""
        self.steps.clear()
