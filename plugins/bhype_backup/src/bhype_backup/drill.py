"""``backup.drill``: prove a backup boots — restore it as a temporary VM, wait for a sign of life.

For each VM a job selects (``{"job": ID}``, submitted by the jobs tick on the job's
``drill_schedule``) or for one point (``{"point": ID, "text": …, "timeout": …}``), the newest
complete point is restored as a new VM ``drill-<point>-<random>`` (``backup.restore`` with
``as``: new UUID and MACs), its NICs are moved to the isolated switch ``[backup_jobs]
drill_switch`` (created without uplink if missing; when none is configured they are removed,
so the copy can never answer on the production network), it is started, and its serial console is
read until the configured text appears — or its VNC screen is watched until it changes
(:mod:`bhype_backup.drill_vnc`), or a TCP port answers on the isolated switch over IPv6
link-local (:mod:`bhype_backup.drill_tcp`; a VM without NICs gets one there, and with no drill
switch configured the switch ``drill`` is used) — or the timeout passes. The point records
``drill_state`` (``ok``/``failed``), ``drill_at`` and ``drill_excerpt`` (the console lines
around the text, or the last ones seen); a failure is a ``backup.drill_failed`` event. The
temporary VM is always force-stopped and destroyed, whatever happened.
"""

from __future__ import annotations

import os
import re
import secrets
import select
import time
from typing import Any

from sqlmodel import col
from sqlmodel import select as sql_select

from bhype_core.plugin_api import (
    BhypeError,
    Event,
    NotFound,
    TaskFailed,
    ValidationErrors,
    detect_platform,
    find_vm,
    list_switches,
    open_vm_console,
    session,
    switch_interface,
    utcnow,
)

DRILL_KIND = "backup.drill"
TCP_SWITCH = "drill"  # a TCP check needs a switch: this one when [backup_jobs] drill_switch is empty
EXCERPT_CHARS = 2000
_CONTROL = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]|[\x00-\x08\x0b-\x1f\x7f]")


def clean(text: str) -> str:
    """Console text without terminal escapes and control characters (newlines and tabs kept)."""
    return _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def wait_for_text(fd: int, text: str, timeout: float, cancelled: Any = lambda: False) -> tuple[bool, str]:
    """Read the console ``fd`` until ``text`` appears or ``timeout`` seconds pass.

    :returns: whether it appeared, and an excerpt (the lines up to and around it, or the last
        ones seen), at most :data:`EXCERPT_CHARS` characters.
    """
    seen = ""
    deadline = time.monotonic() + timeout
    while (left := deadline - time.monotonic()) > 0 and not cancelled():
        ready, _, _ = select.select([fd], [], [], min(left, 1.0))
        if not ready:
            continue
        try:
            chunk = os.read(fd, 65536)
        except BlockingIOError:
            continue
        if not chunk:  # the console closed: the VM stopped
            break
        seen = (seen + clean(chunk.decode(errors="replace")))[-65536:]
        at = seen.find(text)
        if at >= 0:
            end = seen.find("\n", at + len(text))
            end = len(seen) if end < 0 else end
            return True, seen[max(0, end - EXCERPT_CHARS):end]
    return False, seen[-EXCERPT_CHARS:]


def record(runtime: Any, point_id: int, state: str, excerpt: str) -> None:
    """Store the drill's outcome on the point."""
    from bhype_backup.models import BackupPoint

    with session(runtime, write=True) as db:
        row = db.get(BackupPoint, point_id)
        if row is not None:
            row.drill_state, row.drill_at, row.drill_excerpt = state, utcnow(), excerpt
            db.add(row)


def run_sub(context: Any, kind: str, arguments: dict[str, Any]) -> Any:
    """Run one sub-task to its end; its result.

    :raises TaskFailed: it did not succeed (its error message)."""
    [outcome] = context.wait(context.submit(kind, arguments))
    if not outcome.ok:
        raise TaskFailed(f"{kind} {outcome.state}: {(outcome.error or {}).get('message', outcome.state)}")
    return outcome.result


def isolate(context: Any, name: str, check: dict[str, Any]) -> str | None:
    """Cut VM ``name`` off every network: its NICs move to the drill switch (created without
    uplink if missing), or, with no drill switch configured, are removed. A TCP check needs a
    NIC on a switch: one is added when the VM has none, on :data:`TCP_SWITCH` when no drill
    switch is configured. Returns the switch the VM is on, if any."""
    vm = find_vm(context.runtime, name)
    if vm is None:
        raise NotFound(f"the restored VM {name} is gone")
    nics = list((vm.spec or {}).get("nics") or [])
    switch = context.settings.section("backup_jobs").drill_switch
    if check.get("kind") == "tcp":
        switch = switch or TCP_SWITCH
        if not nics:
            context.log(f"{name}: no NIC; one is added on the isolated switch {switch} for the TCP check")
            nics = [{}]
    if not nics:
        return None
    if not switch:
        context.log(f"{name}: NICs removed (no drill switch configured): the drill runs without network")
        run_sub(context, "vm.edit", {"name": name, "changes": {"nics": []}})
        return None
    with session(context.runtime) as db:  # list_switches reads through a database session
        known = {s.name for s in list_switches(db)}
    if switch not in known:
        context.log(f"creating the isolated drill switch {switch} (no uplink)")
        run_sub(context, "switch.create", {"name": switch})
    run_sub(context, "vm.edit", {"name": name, "changes": {"nics": [{**nic, "switch": switch} for nic in nics]}})
    return switch


def tcp_sign_of_life(context: Any, name: str, switch: str, check: dict[str, Any], timeout: int) -> tuple[bool, str]:
    """Wait for the check's TCP port on VM ``name`` over IPv6 link-local on ``switch``'s bridge
    (:mod:`bhype_backup.drill_tcp`)."""
    from bhype_backup.drill_tcp import eui64_link_local, link_local_argv, scoped, wait_for_port

    interface = switch_interface(switch)
    context.runner.run(link_local_argv(detect_platform(context.settings.core.platform), interface), timeout=30)
    vm = find_vm(context.runtime, name)
    if check.get("address"):
        addresses = [str(check["address"])]
    else:
        nics = [n for n in ((vm.spec if vm else {}) or {}).get("nics") or [] if n.get("mac")]
        addresses = [eui64_link_local(n["mac"]) for n in nics]
    targets = [scoped(a, interface) for a in addresses]
    port = int(check["port"])
    context.log(f"{name} started; waiting up to {timeout} s for TCP port {port} on {', '.join(targets)} "
                f"(isolated switch {switch}, IPv6 link-local)")
    return wait_for_port(targets, port, timeout, context.cancel_requested)


def sign_of_life(context: Any, name: str, check: dict[str, Any], timeout: int,
                 switch: str | None = None) -> tuple[bool, str, str]:
    """Wait for the check's sign of life on VM ``name``; (seen, excerpt, error)."""
    if check.get("kind") == "tcp":
        assert switch is not None  # isolate() always puts a TCP-checked VM on a switch
        answered, said = tcp_sign_of_life(context, name, switch, check, timeout)
        return answered, said, "" if answered else f"{said} within {timeout} s"
    if check.get("kind") == "vnc":
        from bhype_backup.drill_vnc import wait_for_change

        context.log(f"{name} started; waiting up to {timeout} s for its VNC screen to change")
        fd = open_vm_console(context.runtime, name, "vnc")
        try:
            changed, said = wait_for_change(fd, timeout, context.cancel_requested)
        finally:
            os.close(fd)
        return changed, said, "" if changed else f"{said} within {timeout} s"
    text = str(check.get("text") or "")
    context.log(f"{name} started; waiting up to {timeout} s for {text!r} on its serial console")
    fd = open_vm_console(context.runtime, name, "serial")
    try:
        passed, excerpt = wait_for_text(fd, text, timeout, context.cancel_requested)
    finally:
        os.close(fd)
    return passed, excerpt, "" if passed else f"{text!r} did not appear on the serial console within {timeout} s"


def drill_point(context: Any, point: Any, check: dict[str, Any], timeout: int) -> dict[str, Any]:
    """Drill one point (see the module docstring); never raises for a failed drill."""
    runtime = context.runtime
    prefix = context.settings.section("backup_jobs").drill_prefix
    name = f"{prefix}{point.id}-{secrets.token_hex(3)}"[:63]
    record(runtime, point.id, "running", "")
    passed, excerpt, error = False, "", ""
    restored = False
    began = time.monotonic()
    timings: dict[str, float] = {}
    try:
        context.log(f"point {point.id} ({point.vm_name}): restoring as {name}")
        run_sub(context, "backup.restore", {"point": point.id, "vm": point.vm_name, "as": name})
        restored = True
        timings["restore_seconds"] = round(time.monotonic() - began, 3)
        switch = isolate(context, name, check)
        starting = time.monotonic()
        run_sub(context, "vm.start", {"name": name})
        passed, excerpt, error = sign_of_life(context, name, check, timeout, switch)
        # From the start request to the sign of life: what the drill's boot costs.
        timings["sign_of_life_seconds"] = round(time.monotonic() - starting, 3)
    except (BhypeError, OSError) as exc:
        error = getattr(exc, "message", None) or str(exc)
    finally:
        if restored or find_vm(runtime, name) is not None:
            for kind in ("vm.force_stop", "vm.destroy"):
                try:
                    run_sub(context, kind, {"name": name})
                except BhypeError as exc:  # stopped already, or gone: log and go on
                    context.log(f"{kind} {name}: {exc.message}", "warning")
    state = "ok" if passed else "failed"
    record(runtime, point.id, state, excerpt or error)
    if passed:
        context.log(f"point {point.id}: drill passed")
    else:
        context.log(f"point {point.id}: drill failed: {error}", "error")
        runtime.notify(Event("backup.drill_failed", f"restore drill of {point.vm_name} (point {point.id}) failed: "
                             f"{error}", severity="error", subject=f"vm:{point.vm_name}",
                             data={"point": point.id, "vm": point.vm_name, "target": point.target, "error": error}))
    timings["total_seconds"] = round(time.monotonic() - began, 3)
    return {"point": point.id, "vm": point.vm_name, "state": state, "error": error, "excerpt": excerpt, **timings}


def newest_points(runtime: Any, job: Any) -> list[Any]:
    """The newest complete point on the job's target of each VM the job selects now."""
    from bhype_backup.jobs_service import selected_vms
    from bhype_backup.models import BackupPoint

    found = []
    for vm in selected_vms(runtime, job):
        query = (sql_select(BackupPoint).where(col(BackupPoint.vm_uuid) == str(vm.uuid),
                                               col(BackupPoint.target) == job.target,
                                               col(BackupPoint.complete).is_(True))
                 .order_by(col(BackupPoint.created).desc()))
        with session(runtime) as db:
            point = db.exec(query).first()
        if point is not None:
            found.append(point)
    return found


def drill(context: Any, job: int | None = None, point: int | None = None, text: str | None = None,
          vnc: bool = False, timeout: int | None = None, check: dict[str, Any] | None = None) -> dict[str, Any]:
    """``backup.drill``: drill a job's newest points (its ``drill_check``), or one point
    (``check``, a ``drill_check``; or ``text`` on the serial console, or ``vnc``: the screen
    changing); fails if any failed."""
    from bhype_backup.jobs_service import check_drill, get_job
    from bhype_backup.verify import get_point

    runtime = context.runtime
    if (job is None) == (point is None):
        raise ValidationErrors([("job", "give either a job or a point")])
    if job is not None:
        row = get_job(runtime, job)
        check, timeout = dict(row.drill_check), row.drill_timeout
        points = newest_points(runtime, row)
    else:
        check = dict(check) if check else {"kind": "vnc"} if vnc else {"kind": "serial", "text": text}
        points = [get_point(runtime, int(point or 0))]
    problems = check_drill(check) if check else [("check", "a sign of life to wait for")]
    if problems:
        raise ValidationErrors(problems)
    results = [drill_point(context, p, check, int(timeout or 600)) for p in points]
    failed = [r for r in results if r["state"] != "ok"]
    if failed:
        raise TaskFailed("restore drill failed for " + ", ".join(f"{r['vm']} (point {r['point']})" for r in failed))
    return {"drills": results}
