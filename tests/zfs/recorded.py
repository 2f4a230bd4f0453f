"""A runner that answers FreeBSD commands from recorded samples (the one boundary we cannot run here).

Each answer is ``(returncode, stdout, stderr)``; stdout may name a file in ``fixtures/freebsd``
(``@gpart_show_ada1.txt``). An argv nobody recorded fails the test, naming it, so a code change
that runs a different command cannot pass against stale samples.
"""

from __future__ import annotations

from pathlib import Path

from bhype_core.host.runner import Result, Runner

FREEBSD = Path(__file__).parent / "fixtures" / "freebsd"


def sample(text: str) -> str:
    """``@name`` → the contents of ``fixtures/freebsd/name``; other text as is."""
    return (FREEBSD / text[1:]).read_text() if text.startswith("@") else text


class RecordedRunner(Runner):
    """Answers each argv (a tuple key) with its recorded result; remembers what ran."""

    def __init__(self, answers: dict[tuple[str, ...], tuple[int, str, str]]) -> None:
        super().__init__()
        self.answers = answers
        self.calls: list[list[str]] = []

    @property
    def target(self) -> str:
        return "ssh://root@freebsd-sample:22"

    def _execute(self, argv, *, timeout, input, env, cwd) -> Result:
        self.calls.append(list(argv))
        key = tuple(argv)
        if key not in self.answers:
            raise AssertionError(f"no recorded FreeBSD answer for {argv}")
        code, out, err = self.answers[key]
        out, err = sample(out), sample(err)
        return Result(list(argv), code, out, err, out.encode(), err.encode(), 0.0)
