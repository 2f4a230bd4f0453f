"""A runner that answers FreeBSD commands from recorded samples (the one boundary we cannot run here).

Each answer is ``(returncode, stdout, stderr)`` or a list of them (one per call, in order);
stdout/stderr may name a file under ``samples/`` (``@service/status_running.txt``). An argv
nobody recorded fails the test, naming it, so a code change that runs a different command
cannot pass against stale samples.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bhype_core.host.runner import Result, Runner

SAMPLES = Path(__file__).parent / "samples"


def sample(text: str) -> str:
    """``@path`` → the contents of ``samples/path``; other text as is."""
    return (SAMPLES / text[1:]).read_text() if text.startswith("@") else text


class RecordedRunner(Runner):
    """Answers each argv (a tuple key) with its recorded result; remembers what ran."""

    def __init__(self, answers: dict[tuple[str, ...], Any]) -> None:
        super().__init__()
        self.answers = {key: list(value) if isinstance(value, list) else value for key, value in answers.items()}
        self.calls: list[list[str]] = []

    @property
    def target(self) -> str:
        return "ssh://root@freebsd-sample:22"

    def _execute(self, argv, *, timeout, input, env, cwd) -> Result:
        self.calls.append(list(argv))
        key = tuple(argv)
        if key not in self.answers:
            raise AssertionError(f"no recorded FreeBSD answer for {argv}")
        answer = self.answers[key]
        if isinstance(answer, list):
            answer = answer.pop(0) if len(answer) > 1 else answer[0]
        code, out, err = answer
        out, err = sample(out), sample(err)
        return Result(list(argv), code, out, err, out.encode(), err.encode(), 0.0)
