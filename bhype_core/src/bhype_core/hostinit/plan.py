"""What ``bhype host init`` would change: steps, changes, and the applier that runs them."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Change:
    """One difference between the host and what bHype needs, and how to remove it.

    :param summary: what changes, in words ("add vmm nmdm to kld_list").
    :param argvs: the commands that apply it, in order (argv lists, run through the runner).
    :param manpage: the manual page the commands follow, e.g. ``sysrc(8)``.
    :param inputs: stdin for each argv (``None`` for none), same length as ``argvs`` or empty.
    """

    summary: str
    argvs: tuple[tuple[str, ...], ...]
    manpage: str
    inputs: tuple[str | None, ...] = ()

    def commands(self) -> list[str]:
        """Each argv as one shell-quoted line (for display only; never run as a string)."""
        lines = []
        for index, argv in enumerate(self.argvs):
            stdin = self.inputs[index] if index < len(self.inputs) else None
            lines.append(shlex.join(argv) + (" < (shipped file)" if stdin is not None else ""))
        return lines


@dataclass(frozen=True)
class Step:
    """One area of host init: what is already right, what would change, what cannot be done.

    ``notes`` say what is fine or does not apply (e.g. kernel modules on Linux); ``problems``
    are things host init cannot fix itself (a reboot is needed, a database is unreachable).
    """

    name: str
    manpage: str
    changes: tuple[Change, ...] = ()
    notes: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()

    @property
    def done(self) -> bool:
        """Nothing to change and nothing wrong."""
        return not self.changes and not self.problems


@dataclass
class Outcome:
    """What applying a plan did: the summaries of applied changes, and the first failure."""

    applied: list[str] = field(default_factory=list)
    failed: str = ""


def count_changes(steps: list[Step]) -> int:
    """Number of changes the plan would make."""
    return sum(len(step.changes) for step in steps)


def render(steps: list[Step]) -> str:
    """The plan as text: one block per step, its changes with their commands and man page."""
    lines = []
    for step in steps:
        state = "ok" if step.done else ("change" if step.changes else "problem")
        lines.append(f"[{state}] {step.name} ({step.manpage})")
        lines += [f"    {note}" for note in step.notes]
        for change in step.changes:
            lines.append(f"  - {change.summary} ({change.manpage})")
            lines += [f"      $ {command}" for command in change.commands()]
        lines += [f"  ! {problem}" for problem in step.problems]
    total = count_changes(steps)
    lines.append(f"host init: {total} change(s) to make" if total else "host init: nothing to change")
    return "\n".join(lines)


def to_dict(steps: list[Step]) -> dict[str, Any]:
    """The plan as JSON-ready data (``bhype host init --json``)."""
    return {
        "changes": count_changes(steps),
        "steps": [
            {
                "name": step.name, "manpage": step.manpage, "notes": list(step.notes),
                "problems": list(step.problems),
                "changes": [{"summary": c.summary, "manpage": c.manpage, "argvs": [list(a) for a in c.argvs]}
                            for c in step.changes],
            }
            for step in steps
        ],
    }


def apply(runner: Any, steps: list[Step], echo: Callable[[str], Any] = print) -> Outcome:
    """Run every change's argvs through ``runner`` (checked), in plan order; stop at the first
    failure (later steps may depend on earlier ones: the directory owner on the new group)."""
    from bhype_core.errors import CommandError

    outcome = Outcome()
    for step in steps:
        for change in step.changes:
            try:
                for index, argv in enumerate(change.argvs):
                    stdin = change.inputs[index] if index < len(change.inputs) else None
                    runner.run(list(argv), input=stdin, check=True)
            except CommandError as exc:
                outcome.failed = f"{step.name}: {change.summary}: {exc.message}"
                echo(f"failed: {outcome.failed}")
                return outcome
            outcome.applied.append(f"{step.name}: {change.summary}")
            echo(f"changed: {step.name}: {change.summary}")
    return outcome
