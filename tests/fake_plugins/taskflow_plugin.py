"""Test plugin for real worker processes (installed at test time through a ``bhype`` entry point):
a resumable multi-step kind, a kind that runs sub-tasks, and, when the environment asks for
them, a periodic job and a sampler. What they do lands in files under ``$TASKFLOW_DIR``."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from bhype_core.hookspecs import hookimpl
from bhype_core.registry import PeriodicJob, Sampler, TaskKind

STEPS = ("one", "two", "three")


def out(name: str) -> Path:
    return Path(os.environ["TASKFLOW_DIR"]) / name


def append(name: str, line: str) -> None:
    with open(out(name), "a") as file:
        file.write(line + "\n")


def steps(context: Any, gate: str) -> dict[str, Any]:
    """Three steps, each recorded and checkpointed; step three waits for the file ``gate``."""
    first = context.resume_state
    done = list(first["data"]) if first else []
    for step in STEPS:
        if step in done:
            continue
        if step == "three":
            while not Path(gate).exists():
                context.check_cancelled()
                time.sleep(0.05)
        append("steps.log", f"{os.getpid()} {step}")
        done.append(step)
        context.checkpoint(step, done)
    return {"resumed_from": first["step"] if first else None, "done": done}


def chain(context: Any, vm: str, steps: list[str], child_locks: list[str] | None = None) -> dict[str, Any]:
    """Stop → copy → start style: one ``core.ping`` sub-task per step, run in order."""
    locks = child_locks if child_locks is not None else [f"vm:{vm}"]
    handles = [context.submit("core.ping", {"echo": step, "locks": locks}) for step in steps]
    outcomes = context.wait(handles)
    return {"outcomes": [[o.id, o.state, (o.result or {}).get("echo")] for o in outcomes]}


def append_id(context: Any, sleep: float = 0.2) -> dict[str, Any]:
    """Append this task's id to ``append.log`` (the side effect the restart tests count), then
    spend ``sleep`` seconds."""
    append("append.log", context.task_id)
    time.sleep(sleep)
    return {"id": context.task_id}


def start_sampler(runtime: Any):
    ticks = [0]

    def tick() -> None:
        ticks[0] += 1
        append("samples.log", str(os.getpid()))
        if ticks[0] % 2 == 0:
            raise RuntimeError("sample failed")

    return tick


@hookimpl
def bhype_register_tasks(register):
    register(TaskKind(name="test.steps", run=steps, role="operator", resumable=True))
    register(TaskKind(name="test.append", run=append_id, role="operator"))
    register(TaskKind(name="test.chain", run=chain, role="operator", locks=lambda arguments: [f"vm:{arguments['vm']}"]))


@hookimpl
def bhype_register_periodic_jobs(register):
    if os.environ.get("TASKFLOW_PERIODIC"):
        # Due once a year; run_at_start submits it when the worker starts.
        register(PeriodicJob(name="test.scheduled", kind="core.ping", minute="0", hour="0", day="1", month="1",
                             arguments={"echo": "scheduled", "locks": ["vm:p"]}, run_at_start=True))


@hookimpl
def bhype_register_samplers(register):
    if os.environ.get("TASKFLOW_SAMPLER"):
        register(Sampler(name="test.sampler", start=start_sampler, interval=0.2))
