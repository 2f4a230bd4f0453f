"""Dry-run mode: show the argv a runner would run, run nothing, still audit it."""

from __future__ import annotations

import logging
import shlex
from collections.abc import Callable

from bhype_core.host.pipeline import CancelCheck, LineCallback, PipeResult
from bhype_core.host.runner import Result, Runner

log = logging.getLogger("bhype.host.dryrun")


class DryRunRunner(Runner):
    """Wraps another runner and never runs anything.

    Each command is validated exactly as the real runner would, logged (and passed to
    ``echo``, e.g. ``print``, as one shell-quoted line for display), audited with
    ``dry_run=True``, and answered with an empty successful :class:`Result`. ``target`` is the
    wrapped runner's, so the audit trail shows where the command would have gone.
    """

    def __init__(self, inner: Runner, echo: Callable[[str], object] | None = None) -> None:
        super().__init__(inner.default_timeout)
        self.inner = inner
        self.echo = echo

    @property
    def target(self) -> str:
        return self.inner.target

    def _execute(
        self,
        argv: list[str],
        *,
        timeout: float,
        input: bytes | None,
        env: dict[str, str] | None,
        cwd: str | None,
    ) -> Result:
        line = shlex.join(argv)
        if env:
            line = shlex.join([f"{name}={value}" for name, value in env.items()]) + " " + line
        if cwd is not None:
            line = f"(in {cwd}) {line}"
        self._show(line)
        return _nothing_ran(argv)

    def _pipe(
        self,
        producer: list[str],
        sink: Runner,
        consumer: list[str],
        timeout: float,
        on_producer_line: LineCallback | None,
        cancel: CancelCheck | None = None,
    ) -> PipeResult:
        where = "" if sink is self or sink.target == self.target else f" (on {sink.target})"
        self._show(f"{shlex.join(producer)} | {shlex.join(consumer)}{where}")
        return PipeResult(_nothing_ran(producer), _nothing_ran(consumer), 0.0)

    def _show(self, line: str) -> None:
        """Log the would-be command line and hand it to ``echo``."""
        log.info("dry run on %s: would run %s", self.target, line)
        if self.echo is not None:
            self.echo(f"would run: {line}")

    def close(self) -> None:
        self.inner.close()

    def __repr__(self) -> str:
        return f"DryRunRunner({self.inner!r})"


def _nothing_ran(argv: list[str]) -> Result:
    """The empty successful result a dry run answers with."""
    return Result(
        argv=list(argv),
        returncode=0,
        stdout="",
        stderr="",
        stdout_bytes=b"",
        stderr_bytes=b"",
        duration=0.0,
        dry_run=True,
    )
