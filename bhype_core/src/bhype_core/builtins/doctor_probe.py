"""Running one read-only doctor command: never raises, whatever the command does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from bhype_core.errors import CommandError

# Doctor commands are quick queries; anything slower is itself a finding.
PROBE_TIMEOUT = 10.0


@dataclass(frozen=True)
class Probe:
    """What a probe command did: exit status (None when it could not run or timed out),
    outputs, how long it took and, when it did not exit, why."""

    argv: tuple[str, ...]
    returncode: int | None
    stdout: str = ""
    stderr: str = ""
    duration: float = 0.0
    error: str = ""

    @property
    def ok(self) -> bool:
        """The command ran and exited 0."""
        return self.returncode == 0

    def why(self) -> str:
        """A one-line reason for a failed probe (error, else last stderr line, else status)."""
        if self.error:
            return self.error
        lines = [line for line in self.stderr.strip().splitlines() if line.strip()]
        return lines[-1].strip() if lines else f"exit status {self.returncode}"


def probe(runner: Any, argv: list[str], timeout: float = PROBE_TIMEOUT) -> Probe:
    """Run ``argv`` through ``runner`` without checking its status.

    Not found, timed out or killed become a :class:`Probe` with ``returncode=None`` and the
    runner's reason: a doctor check reports, it does not crash.
    """
    try:
        result = runner.run(argv, timeout=timeout, check=False)
    except CommandError as exc:
        return Probe(tuple(argv), None, exc.stdout, exc.stderr, exc.duration, exc.reason or exc.message)
    duration = getattr(result, "duration", 0.0)
    return Probe(tuple(argv), result.returncode, result.stdout, result.stderr, duration)
