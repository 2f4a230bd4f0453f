"""Task ``hostops.update.run``: the host update workflow as one resumable task.

Its state is the ``hostops_update_run`` row. Each step reports to the task log, the row and
``bhype_notify`` (``hostops.update.step``), and is marked done before the next one begins, so
the task resumed after the reboot (or after a worker died) goes on where it was, and a failed
run resumed by the admin repeats only the step that failed. ``mode = "bring_back"`` skips the
update's remaining steps and only brings the VMs and services back and re-runs the checks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bhype_core.plugin_api import BhypeError, Cancelled, Conflict, Event, ValidationErrors
from bhype_hostops.update import hoststeps, runs, substeps
from bhype_hostops.update.cli import render_plan
from bhype_hostops.update.plan import gather
from bhype_hostops.update.platform import select_platform
from bhype_hostops.update.settings import update_settings

LOCK = "host:update"
MODES = ("update", "bring_back")

# (step, runs on the host platform, kept in bring-back mode, what it does)
STEPS: list[tuple[str, bool, bool, Callable[..., str | None]]] = [
    ("boot_environment", True, False, hoststeps.boot_environment),
    ("stop_vms", False, False, substeps.stop_vms),
    ("stop_services", False, False, substeps.stop_services),
    ("install", True, False, hoststeps.install),
    ("reboot", True, False, hoststeps.reboot),
    ("verify_boot_environment", True, False, hoststeps.verify_boot_environment),
    ("start_vms", False, True, substeps.start_vms),
    ("start_services", False, True, substeps.start_services),
    ("check", False, True, substeps.check),
]
STEP_NAMES = [step[0] for step in STEPS]


def _notify(context: Any, kind: str, run_id: int, message: str, severity: str = "info", **data: Any) -> None:
    context.runtime.notify(Event(kind, message, severity=severity, subject="host", user=None,
                                 data={"run": run_id, "task": context.task_id, **data}))


def _open(context: Any, run: int | None, mode: str) -> Any:
    """The run this task works on: resumed after its worker died, an admin's resume or
    bring-back of a stopped one, or a new one (after its plan shows nothing in the way)."""
    runtime = context.runtime
    if context.resume_state:
        run_id = int(context.resume_state["data"]["run"])
        context.log(f"resuming host update run {run_id} (the worker stopped: a reboot or a crash)")
        return runs.get(runtime, run_id)
    if run is None:
        if mode != "update":
            raise ValidationErrors([("run", "bring_back needs the run whose VMs to bring back")])
        current = runs.latest(runtime, open_only=True)
        if current is not None and current.task_id == context.task_id:
            # This task made the run, then its worker died before the first checkpoint.
            context.log(f"resuming host update run {current.id} (made by this task before its worker stopped)")
            return current
        if current is not None:
            raise Conflict(f"host update run {current.id} is {current.state} at step {current.step or 'start'}: "
                           "resume it, or bring its VMs back without updating, before starting another")
        settings = update_settings(runtime)
        platform, error = _platform(context, settings)
        plan = gather(context, settings, platform, error)
        if plan["problems"]:
            raise Conflict("the host update cannot start: " + "; ".join(plan["problems"]))
        created = runs.create(runtime, context.user or "@system", context.task_id, plan, mode)
        context.log(f"host update run {created.id}, as planned:")
        for line in render_plan(plan).splitlines():
            context.log(line)
        return created
    existing = runs.get(runtime, run)
    if existing.state not in ("failed", "running"):
        raise Conflict(f"host update run {run} is {existing.state}: nothing to resume")
    if existing.state == "running" and existing.task_id != context.task_id:
        raise Conflict(f"host update run {run} is still running (task {existing.task_id})")
    context.log(f"{'bringing the VMs of' if mode == 'bring_back' else 'resuming'} host update run {run} "
                f"from step {existing.step}")
    return runs.update(runtime, run, state="running", error="", task_id=context.task_id,
                       data={"mode": mode} if mode == "bring_back" else None)


def _platform(context: Any, settings: Any) -> tuple[Any, str | None]:
    try:
        return select_platform(context.runtime, settings), None
    except BhypeError as exc:
        return None, exc.message


def run_update(context: Any, run: int | None = None, mode: str = "update") -> dict[str, Any]:
    """Run (or resume) the host update workflow; returns the run as recorded.

    :param run: resume (``mode = "update"``) or bring back (``"bring_back"``) this stopped run;
        ``None`` starts a new one.
    :raises Conflict: another run is open, or the plan names problems (nothing changed).
    :raises StepFailed: a step failed: the run stops there (``failed``) until resumed.
    """
    if mode not in MODES:
        raise ValidationErrors([("mode", f"must be one of {', '.join(MODES)}, not {mode!r}")])
    runtime = context.runtime
    settings = update_settings(runtime)
    current = _open(context, run, mode)
    run_id: int = current.id
    context.checkpoint("run", {"run": run_id})
    bring_back = current.data.get("mode") == "bring_back"
    platform = None
    for number, (step, on_host, keep, function) in enumerate(STEPS):
        current = runs.get(runtime, run_id)
        if step in current.data.get("done", []):
            continue
        if bring_back and not keep:
            runs.report(runtime, run_id, step, "skipped", "skipped: bringing the VMs back without updating")
            continue
        context.progress(5 + 90 * number / len(STEPS), step.replace("_", " "))
        runs.update(runtime, run_id, step=step)
        try:
            if on_host and platform is None:
                platform = select_platform(runtime, settings)
            args = (context, current, platform, settings) if on_host else (context, current, settings)
            message = function(*args)
        except Cancelled:
            runs.update(runtime, run_id, state="failed", error=f"cancelled at step {step}")
            runs.report(runtime, run_id, step, "failed", "cancelled")
            raise
        except Exception as exc:  # noqa: BLE001 - every failure stops the run at its step, said clearly
            text = exc.message if isinstance(exc, BhypeError) else f"{type(exc).__name__}: {exc}"
            message = (f"host update run {run_id} stopped at step {step}: {text}. Resume it to retry "
                       f"this step, or bring the VMs back without updating")
            runs.report(runtime, run_id, step, "failed", text)
            runs.update(runtime, run_id, state="failed", error=message)
            context.log(message, "error")
            _notify(context, "hostops.update.failed", run_id, message, "error", step=step, error=text)
            raise substeps.StepFailed(message) from exc
        state = "skipped" if message is None else "done"
        runs.report(runtime, run_id, step, state, message or "skipped")
        context.log(f"step {step}: {message or 'skipped'}")
        _notify(context, "hostops.update.step", run_id, f"host update run {run_id}: {step}: "
                f"{message or 'skipped'}", step=step, state=state)
        context.checkpoint(step, {"run": run_id})
    final = "brought_back" if bring_back else "done"
    finished = runs.update(runtime, run_id, state=final, step="finished")
    text = (f"host update run {run_id}: the VMs are back without updating" if bring_back
            else f"host update run {run_id} finished: {len(finished.data.get('vms_started', []))} VM(s) back")
    context.log(text)
    _notify(context, "hostops.update.done", run_id, text, state=final)
    context.progress(100, final)
    return finished.to_dict()


def plan_task(context: Any) -> dict[str, Any]:
    """Task ``hostops.update.plan``: the plan, changing nothing."""
    settings = update_settings(context.runtime)
    platform, error = _platform(context, settings)
    return gather(context, settings, platform, error)
