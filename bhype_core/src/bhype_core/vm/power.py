"""Tasks ``vm.start``, ``vm.stop``, ``vm.restart``, ``vm.force_stop``: preflight, hooks, driver.

A start that cannot work fails before anything runs, naming every problem and its fix; a
hypervisor that still fails makes the task fail with its exit status and stderr tail (the
driver's :class:`~bhype_core.drivers.base.HypervisorFailed`). Each start rebuilds the VM's
cloud-init seed from its spec and plugs its NICs into their switches; each stop unplugs them
(:mod:`bhype_core.vm.nics`). Each step updates the row's state cache from what the driver
reports.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from bhype_core.cloudinit import prepare_seed
from bhype_core.db.session import session
from bhype_core.drivers.base import Problem, VMState, VMStatus, blocking
from bhype_core.drivers.boot_plan import mode_errors
from bhype_core.drivers.preflight import local_runner
from bhype_core.errors import BhypeError, Conflict, ValidationErrors
from bhype_core.network.taps import planned_taps
from bhype_core.vm.attach import attachments
from bhype_core.vm.hooks import hook_errors, vm_after, vm_before
from bhype_core.vm.models import VM, VMRef
from bhype_core.vm.nics import nic_guard, nic_problems, plug, release_nics, unplug
from bhype_core.vm.records import get_vm, set_state
from bhype_core.vm.services import active_driver, active_platform, open_datastore
from bhype_core.vm.settings import vm_settings


class PreflightFailed(BhypeError):
    """A start was refused before anything ran; ``problems`` says what and how to fix it."""

    code = "preflight_failed"
    http_status = 409

    def __init__(self, vm: str, problems: list[Problem]) -> None:
        self.problems = problems
        lines = [f"{p.field}: {p.message}" + (f" (fix: {p.fix})" if p.fix else "") for p in problems]
        super().__init__(f"VM {vm} cannot start: " + "; ".join(lines))

    def to_dict(self) -> dict:
        body = super().to_dict()
        body["error"]["problems"] = [
            {"field": p.field, "message": p.message, "fix": p.fix, "severity": p.severity} for p in self.problems
        ]
        return body


def _load(context: Any, name: str) -> tuple[VM, VMRef, Any]:
    runtime = context.runtime
    with session(runtime) as db:
        row = get_vm(db, name)  # who may: TaskKind.authorize (vm.access.owns_vm)
    store = open_datastore(runtime, row.datastore)
    return row, VMRef.of(row, store.vm_dir(row.name)), store


def status_detail(status: VMStatus) -> str:
    """One line for the list: the driver's detail, with the exit status when it explains a
    crash (a clean power-off's exit status, bhyve's 1 for instance, is no news)."""
    if status.exit_status and status.state is VMState.CRASHED:
        return f"exit status {status.exit_status}: {status.detail}"
    return status.detail


def forced_off(status: VMStatus) -> bool:
    """Whether the supervisor had to power the VM off by force (its detail says so)."""
    return "powered off by force" in status.detail


def cached_status(status: VMStatus) -> dict[str, Any]:
    """What the row keeps of a driver answer: everything, with only the last 5 exits."""
    data = status.to_dict()
    data["history"] = data.get("history", [])[-5:]
    return data


def record_status(runtime: Any, name: str, status: VMStatus) -> None:
    """Write the driver's answer into the row's state cache (the list shows it)."""
    with session(runtime, write=True) as db:
        row = get_vm(db, name)
        set_state(db, row, status.state.value, status_detail(status), cached_status(status))


def _undo_plug(context: Any, ref: VMRef) -> None:
    try:
        unplug(context.runtime, ref.spec, ref.vm_dir, context.log)
    except Exception as exc:  # noqa: BLE001 - the start's own failure is what the task reports
        context.log(f"could not remove the taps of the failed start: {exc}", "warning")


START_NOTES = {
    "install": "install start: the ISO boots first, and is detached after the guest's first reboot",
    "rescue": "rescue start: the ISO boots first on every boot until the VM stops",
}


def start_vm(context: Any, name: str, mode: str = "normal", discard_saved_state: bool = False) -> dict[str, Any]:
    """Start VM ``name``: preflight, ``before_start`` hooks, driver start, ``after_start``.

    ``mode`` is ``normal`` (boot the disk), ``install`` (boot the ISO once, then the disk) or
    ``rescue`` (the ISO first on every boot); :mod:`bhype_core.drivers.boot_plan`. A suspended
    VM (``vm.suspend``) is resumed from its saved state by a normal start (the result says
    ``resumed: true``); ``discard_saved_state`` throws that state away and boots it afresh.

    :raises ValidationErrors: ``mode`` is unknown, or needs an ISO the VM does not have, or
        is not ``normal`` for a suspended VM.
    :raises Conflict: it is already running.
    :raises ResumeRefused: the saved state does not fit the VM any more (edited since).
    :raises PreflightFailed: something a start needs is missing (each problem with its fix).
    :raises HypervisorFailed: the hypervisor exited; its status and stderr tail are included.
    """
    runtime = context.runtime
    row, ref, store = _load(context, name)
    ValidationErrors(mode_errors(ref.spec, mode)).raise_if_any()
    driver = active_driver(runtime)
    if mode in START_NOTES:
        context.log(START_NOTES[mode])
    context.progress(5, "checking the current state")
    current = driver.status(ref.spec, ref.vm_dir)
    if current.active:
        record_status(runtime, name, current)
        raise Conflict(f"VM {name} is already {current.state.value}")
    restore = _saved_state(context, driver, ref, mode, bool(discard_saved_state))
    attached = replace(attachments(store, ref.spec, planned=True), start_mode=mode, restore_from=restore)
    context.progress(15, "preflight")
    planned = replace(attached, taps=planned_taps(ref.spec, active_platform(runtime)))
    problems = local_runner(runtime.runner.target)
    problems += driver.preflight(ref.spec, ref.vm_dir, planned) + nic_problems(runtime, ref.spec)
    for problem in problems:
        hint = f" (fix: {problem.fix})" if problem.fix else ""
        context.log(f"preflight {problem.severity}: {problem.field}: {problem.message}{hint}",
                    "error" if problem.severity == "error" else "warning")
    if blocking(problems):
        raise PreflightFailed(name, blocking(problems))
    context.check_cancelled()
    context.progress(30, "asking plugins")
    vm_before(runtime.pm, "start", ref, context)
    seed = prepare_seed(ref.spec, ref.vm_dir)  # from the spec at every start: edits take effect
    if seed:
        context.log(f"cloud-init seed written to {seed}")
    context.progress(40, "starting the hypervisor")
    with nic_guard(ref.vm_dir):
        try:
            taps = plug(context, ref.spec, ref.vm_dir)
            status = driver.start(ref.spec, ref.vm_dir, replace(attached, cloud_init_iso=seed, taps=taps))
        except BaseException as exc:
            _undo_plug(context, ref)
            record_status(runtime, name, driver.status(ref.spec, ref.vm_dir))
            context.log(f"start failed: {exc.message if isinstance(exc, BhypeError) else exc}", "error")
            raise
    record_status(runtime, name, status)
    context.log(f"VM {name} is {status.state.value} (pid {status.pid})" + (", resumed" if restore else ""))
    failures = vm_after(runtime.pm, "start", ref, context)
    context.progress(100, status.state.value)
    return {**status.to_dict(), "resumed": bool(restore), **hook_errors(failures)}


def _saved_state(context: Any, driver: Any, ref: VMRef, mode: str, discard: bool) -> str | None:
    """The saved state a start resumes from (``None``: it boots), after a discard if asked."""
    saved = driver.saved_state(ref.vm_dir)
    if saved is None:
        return None
    if discard:
        driver.discard_saved_state(ref.vm_dir)
        context.log(f"the state saved at {saved.at} was discarded: the VM boots afresh", "warning")
        return None
    if mode != "normal":
        raise ValidationErrors([("mode", f"VM {ref.name} is suspended (saved at {saved.at}): a {mode} start "
                                         "would lose that state; start it normally to resume it, or with "
                                         "discard_saved_state to boot afresh")])
    context.log(f"resuming from the state saved at {saved.at} ({saved.path})")
    return str(saved.path)


def stop_vm(context: Any, name: str, timeout: float | None = None) -> dict[str, Any]:
    """Stop VM ``name`` gracefully (ACPI), forcing it off after ``timeout`` seconds
    (default ``vm.stop_timeout``). A stopped VM stays stopped (nothing to do)."""
    runtime = context.runtime
    row, ref, _ = _load(context, name)
    driver = active_driver(runtime)
    timeout = float(timeout) if timeout is not None else vm_settings(runtime).stop_timeout
    current = driver.status(ref.spec, ref.vm_dir)
    if not current.active:
        release_nics(runtime, driver, ref.spec, ref.vm_dir, context.log)  # left by a crash
        record_status(runtime, name, current)
        context.log(f"VM {name} is already {current.state.value}")
        context.progress(100, current.state.value)
        return current.to_dict()
    vm_before(runtime.pm, "stop", ref, context)
    context.progress(10, f"asking the guest to shut down (up to {timeout:g} s, then by force;"
                         " force-stop does it at once)")
    status = driver.stop(ref.spec, ref.vm_dir, timeout)
    release_nics(runtime, driver, ref.spec, ref.vm_dir, context.log)
    record_status(runtime, name, status)
    forced = forced_off(status)
    if forced:
        context.log(f"VM {name} is {status.state.value}: the guest did not shut down within {timeout:g} s,"
                    " so it was powered off by force", "warning")
    else:
        context.log(f"VM {name} is {status.state.value}")
    failures = vm_after(runtime.pm, "stop", ref, context)
    context.progress(100, f"{status.state.value} (forced after {timeout:g} s)" if forced else status.state.value)
    return {**status.to_dict(), "forced": forced, **hook_errors(failures)}


def force_stop_vm(context: Any, name: str) -> dict[str, Any]:
    """Power VM ``name`` off at once. ``before_stop`` vetoes are logged, not obeyed."""
    runtime = context.runtime
    row, ref, _ = _load(context, name)
    driver = active_driver(runtime)
    try:
        vm_before(runtime.pm, "stop", ref, context)
    except BhypeError as exc:
        context.log(f"ignored for a forced stop: {exc.message}", "warning")
    context.progress(20, "powering off")
    status = driver.force_stop(ref.spec, ref.vm_dir)
    release_nics(runtime, driver, ref.spec, ref.vm_dir, context.log)
    record_status(runtime, name, status)
    context.log(f"VM {name} is {status.state.value}")
    failures = vm_after(runtime.pm, "stop", ref, context)
    context.progress(100, status.state.value)
    return {**status.to_dict(), **hook_errors(failures)}


class _Part:
    """The task context with progress mapped into ``[low, high]`` (one part of a bigger task)."""

    def __init__(self, context: Any, low: float, high: float) -> None:
        self._context, self._low, self._high = context, low, high

    def __getattr__(self, name: str) -> Any:
        return getattr(self._context, name)

    def progress(self, percent: float, message: str = "") -> None:
        self._context.progress(self._low + (self._high - self._low) * percent / 100, message)


def restart_vm(context: Any, name: str, timeout: float | None = None) -> dict[str, Any]:
    """Stop VM ``name`` gracefully (see :func:`stop_vm`), then start it again; the
    ``restart`` hooks wrap both (which fire their own ``stop``/``start`` hooks)."""
    runtime = context.runtime
    _, ref, _ = _load(context, name)
    vm_before(runtime.pm, "restart", ref, context)
    stopped = stop_vm(_Part(context, 0, 50), name, timeout)
    context.log(f"stopped ({stopped['state']}); starting again")
    started = start_vm(_Part(context, 50, 100), name)
    failures = vm_after(runtime.pm, "restart", ref, context)
    errors = [*stopped.get("hook_errors", []), *started.get("hook_errors", []), *(f.to_dict() for f in failures)]
    return {**started, **({"hook_errors": errors} if errors else {})}
