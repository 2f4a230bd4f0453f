"""The workflow's steps that run other task kinds as sub-tasks: VMs (``vm.stop``/``vm.start``,
the core's), services (``service.stop``/``service.start``) and checks (``hostops.check``), both
from the hostops plugin's other half; each outcome is recorded before the next one starts."""

from __future__ import annotations

import time
from typing import Any

from bhype_core.plugin_api import BhypeError
from bhype_hostops.update import runs


class StepFailed(BhypeError):
    """A step of the host update could not complete (the message says what and why)."""

    code = "update_step_failed"
    http_status = 409


def _registered(context: Any, kind: str) -> bool:
    return kind in set(context.runtime.registry.tasks.names())


def _require(context: Any, kind: str, why: str) -> None:
    if not _registered(context, kind):
        raise StepFailed(f"task kind {kind} is not registered, so {why} (the hostops services and checks "
                         "part of the plugin is not installed or not loaded)")


def _error(outcome: Any) -> str:
    if outcome.state == "queued":
        return "still waiting for a lock another task holds (see the sub-task's progress)"
    error = outcome.error or {}
    return error.get("message") or f"ended {outcome.state}"


def sub(context: Any, kind: str, arguments: dict[str, Any], timeout: float | None = None) -> Any:
    """Run one sub-task in this task's slot and return its outcome."""
    handle = context.submit(kind, arguments)
    context.log(f"{kind} {arguments}: sub-task {handle.id}")
    return context.wait(handle, timeout=timeout)[0]


def stop_vms(context: Any, run: Any, settings: Any) -> str:
    """Take the VMs that ran down, in reverse autostart order: suspended to disk where the plan
    says so (``vm.suspend``; a failed suspend is logged and falls back to the shutdown), else
    shut down by ACPI and forced off after the timeout (``vm.stop``)."""
    stopped = dict(run.data.get("vms_stopped", {}))
    context.log(run.plan.get("vm_shutdown", ""))
    for vm in reversed(run.plan["vms"]):
        name = vm["name"]
        if name in stopped:
            continue
        context.check_cancelled()
        if vm.get("action") == "suspend" and _suspend(context, name, settings):
            stopped[name] = "suspended"
        else:
            stopped[name] = _shutdown(context, vm, settings)
        runs.update(context.runtime, run.id, data={"vms_stopped": stopped})
    return f"{len(stopped)} VM(s) stopped: " + (", ".join(f"{k} ({v})" for k, v in stopped.items()) or "none")


def _suspend(context: Any, name: str, settings: Any) -> bool:
    """``vm.suspend``; False (said in the log) when it failed and the VM must be shut down."""
    outcome = sub(context, "vm.suspend", {"name": name}, timeout=settings.vm_start_wait)
    if outcome.ok:
        context.log(f"VM {name}: suspended to disk")
        return True
    context.log(f"VM {name}: suspend failed ({_error(outcome)}); shutting it down instead", "warning")
    return False


def _shutdown(context: Any, vm: dict[str, Any], settings: Any) -> str:
    name = vm["name"]
    arguments: dict[str, Any] = {"name": name}
    if vm.get("stop_timeout"):
        arguments["timeout"] = vm["stop_timeout"]
    outcome = sub(context, "vm.stop", arguments, timeout=settings.vm_start_wait)
    if not outcome.ok:
        raise StepFailed(f"VM {name} did not stop: {_error(outcome)}")
    forced = bool((outcome.result or {}).get("forced"))
    context.log(f"VM {name}: {'forced off after its timeout' if forced else 'shut down'}")
    return "forced" if forced else "stopped"


def stop_services(context: Any, run: Any, settings: Any) -> str:
    """Stop the configured non-essential services."""
    names = run.plan.get("services") or []
    stopped = list(run.data.get("services_stopped", []))
    if names:
        _require(context, "service.stop", f"the services {', '.join(names)} cannot be stopped")
    for name in names:
        if name in stopped:
            continue
        context.check_cancelled()
        outcome = sub(context, "service.stop", {"name": name})
        if not outcome.ok:
            raise StepFailed(f"service {name} did not stop: {_error(outcome)}")
        stopped.append(name)
        runs.update(context.runtime, run.id, data={"services_stopped": stopped})
    return f"services stopped: {', '.join(stopped) or 'none configured'}"


def start_vms(context: Any, run: Any, settings: Any) -> str:
    """Start exactly the VMs that ran, in autostart order, waiting for each (and its delay)."""
    started = list(run.data.get("vms_started", []))
    for vm in run.plan["vms"]:
        name = vm["name"]
        if name in started:
            continue
        context.check_cancelled()
        context.progress(85, f"starting VM {name}")
        # vm.start resumes a VM the stop step suspended (its saved state is in its directory).
        outcome = sub(context, "vm.start", {"name": name}, timeout=settings.vm_start_wait)
        if not outcome.ok and "already running" not in _error(outcome) and suspended_before(run, name):
            context.log(f"VM {name}: resuming failed ({_error(outcome)}); booting it afresh instead "
                        "(its saved memory state is discarded)", "warning")
            outcome = sub(context, "vm.start", {"name": name, "discard_saved_state": True},
                          timeout=settings.vm_start_wait)
        if not outcome.ok and "already running" not in _error(outcome):
            raise StepFailed(f"VM {name} did not start: {_error(outcome)}")
        started.append(name)
        resumed = bool((outcome.result or {}).get("resumed"))
        changes: dict[str, Any] = {"vms_started": started}
        if resumed:
            changes["vms_resumed"] = [*run.data.get("vms_resumed", []), name]
        run = runs.update(context.runtime, run.id, data=changes)
        context.log(f"VM {name} is running" + (" (resumed from its saved state)" if resumed else ""))
        if vm.get("delay"):
            context.log(f"waiting {vm['delay']} s (its autostart delay) before the next VM")
            _sleep(context, float(vm["delay"]))
    resumed = run.data.get("vms_resumed", [])
    return (f"{len(started)} VM(s) running again, in order: {', '.join(started) or 'none'}"
            + (f" ({', '.join(resumed)} resumed from disk)" if resumed else ""))


def suspended_before(run: Any, name: str) -> bool:
    """Whether this run's stop step suspended VM ``name`` (rather than shutting it down)."""
    return run.data.get("vms_stopped", {}).get(name) == "suspended"


def start_services(context: Any, run: Any, settings: Any) -> str:
    """Start the services this run stopped."""
    stopped = run.data.get("services_stopped", [])
    started = list(run.data.get("services_started", []))
    if stopped:
        _require(context, "service.start", f"the services {', '.join(stopped)} cannot be started again")
    for name in stopped:
        if name in started:
            continue
        outcome = sub(context, "service.start", {"name": name})
        if not outcome.ok:
            raise StepFailed(f"service {name} did not start: {_error(outcome)}")
        started.append(name)
        runs.update(context.runtime, run.id, data={"services_started": started})
    return f"services started: {', '.join(started) or 'none'}"


def check(context: Any, run: Any, settings: Any) -> str | None:
    """Run ``hostops.check`` again; ``None`` (skipped, said in the log) when it is not registered."""
    if not _registered(context, "hostops.check"):
        context.log("hostops.check is not registered (the hostops checks part is not installed): "
                    "the checks were not run again", "warning")
        return None
    outcome = sub(context, "hostops.check", {})
    if not outcome.ok:
        raise StepFailed(f"the checks after the update failed: {_error(outcome)}")
    runs.update(context.runtime, run.id, data={"check_task": outcome.id})
    return f"checks run again (task {outcome.id})"


def _sleep(context: Any, seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        context.check_cancelled()
        time.sleep(min(left, 1.0))
