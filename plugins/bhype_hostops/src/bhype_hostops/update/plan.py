"""The update plan: what the workflow will do, shown before anything happens.

:func:`build_plan` is pure (tested on its own); :func:`gather` collects its inputs in the
worker (VM states from the driver, boot environments, the last check's findings) and is what
the task ``hostops.update.plan`` and the start of every run call.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from bhype_core.plugin_api import BhypeError, Principal, is_running, list_tasks, list_vms, suspend_supported
from bhype_hostops.update.parse import booted, next_boot
from bhype_hostops.update.settings import UpdateSettings

CHECK_KIND = "hostops.check"
SERVICE_KINDS = ("service.stop", "service.start")


def _autostart(vm: dict[str, Any]) -> dict[str, Any]:
    return vm.get("autostart") or {}


def start_key(vm: dict[str, Any]) -> tuple[int, str]:
    """The autostart order (``autostart.order``, then name), as ``bhype vm autostart`` uses:
    VMs without autostart keep their order too (the default, 100)."""
    return (int(_autostart(vm).get("order", 100)), vm["name"])


def updates_from_check(task: dict[str, Any] | None) -> dict[str, Any]:
    """What the last successful ``hostops.check`` found pending (its result's ``patches``:
    ``{"base": [...], "packages": [...]}``), or ``known: false`` when there is none."""
    if not task:
        return {"known": False, "reason": "no hostops.check has succeeded yet: the updates are unknown "
                                          "(whatever the installers find is installed)"}
    patches = (task.get("result") or {}).get("patches") if isinstance(task.get("result"), dict) else None
    if not isinstance(patches, dict):
        return {"known": False, "source_task": task.get("id"),
                "reason": "the last hostops.check result lists no patches: the updates are unknown"}
    return {"known": True, "source_task": task.get("id"), "checked_at": task.get("finished"),
            "base": list(patches.get("base") or []), "packages": list(patches.get("packages") or [])}


def build_plan(
    vms: list[dict[str, Any]],
    settings: UpdateSettings,
    updates: dict[str, Any],
    host: dict[str, Any],
    registered: set[str],
    now: datetime,
) -> dict[str, Any]:
    """The plan.

    :param vms: every VM: ``name``, ``running`` (the driver's answer now) and ``autostart``.
    :param updates: :func:`updates_from_check`'s answer.
    :param host: what the platform answered: ``platform`` (or ``error``), ``base_mode``,
        ``boot_environments`` (``bectl list`` as dicts) or ``be_error``; and ``can_suspend``:
        whether the VM driver can suspend to disk here (its ``suspend`` capability, detected).
    :param registered: the task kinds this worker knows (services and checks come from
        the hostops plugin's other half).
    :returns: VMs to stop (reverse order, each with its ``action``: ``suspend`` to disk or
        ``shutdown`` by ACPI) and bring back (autostart order), VMs left alone, services, updates,
        reboot, boot environment, suspend, and ``problems`` that refuse a run.
    """
    problems: list[str] = []
    running = sorted((vm for vm in vms if vm.get("running")), key=start_key)
    suspend = bool(host.get("can_suspend")) and settings.vm_suspend
    start = [{"name": vm["name"], "order": start_key(vm)[0], "delay": int(_autostart(vm).get("delay", 0)),
              "stop_timeout": settings.vm_stop_timeout or _autostart(vm).get("stop_timeout"),
              "action": "suspend" if suspend else "shutdown"} for vm in running]
    if host.get("error"):
        problems.append(host["error"])
    services = list(settings.services)
    missing = [kind for kind in SERVICE_KINDS if kind not in registered]
    if services and missing:
        problems.append(f"services {', '.join(services)} are to be stopped, but the task kinds "
                        f"{', '.join(missing)} are not registered (the hostops services part is not installed)")
    environments = host.get("boot_environments")
    be: dict[str, Any] = {"create": f"{settings.be_prefix}-{now.strftime('%Y%m%d-%H%M%S')}"}
    if environments is None:
        if not host.get("error"):
            problems.append(f"boot environments are not available: {host.get('be_error') or 'bectl failed'}")
    else:
        from bhype_hostops.update.parse import BootEnvironment

        parsed = [BootEnvironment(**item) for item in environments]
        be["booted"] = getattr(booted(parsed), "name", None)
        be["expected_after_reboot"] = getattr(next_boot(parsed), "name", None)
        if any(item.name == be["create"] for item in parsed):
            problems.append(f"boot environment {be['create']} already exists")
    if updates.get("known"):
        base_pending = bool(updates.get("base"))
        reboot = "yes" if base_pending else "no"
    else:
        reboot = "only if base system updates get installed (decided after the install)"
    if suspend:
        shutdown = ("suspend to disk (memory and devices saved in each VM's directory), resumed after the "
                    "update; a VM whose suspend fails is shut down by ACPI, forced off after its timeout")
    elif host.get("can_suspend"):
        shutdown = ("the VM driver can suspend, but [hostops_update] vm_suspend is off: ACPI shutdown, "
                    "forced off after each VM's timeout")
    else:
        shutdown = ("the VM driver cannot suspend here (bhyve needs a BHYVE_SNAPSHOT build): ACPI shutdown, "
                    "forced off after each VM's timeout")
    return {
        "created": now.isoformat(),
        "platform": host.get("platform"),
        "base_mode": host.get("base_mode"),
        "vms": start,
        "stop_order": [vm["name"] for vm in reversed(start)],
        "start_order": [vm["name"] for vm in start],
        "left_alone": sorted(vm["name"] for vm in vms if not vm.get("running")),
        "vm_shutdown": shutdown,
        "vm_actions": {vm["name"]: vm["action"] for vm in start},
        "suspend_supported": bool(host.get("can_suspend")),
        "services": services,
        "updates": updates,
        "reboot": reboot,
        "boot_environment": be,
        "check_after": CHECK_KIND in registered,
        "problems": problems,
    }


def gather(context: Any, settings: UpdateSettings, platform: Any, platform_error: str | None) -> dict[str, Any]:
    """Collect the plan's inputs in the worker and build it."""
    from datetime import UTC

    runtime = context.runtime
    vms = []
    for row in list_vms(runtime):
        spec = row.spec if isinstance(row.spec, dict) else {}
        vms.append({"name": row.name, "running": is_running(runtime, row.name), "autostart": spec.get("autostart")})
    host: dict[str, Any] = {"platform": getattr(platform, "name", None)}
    if platform_error:
        host["error"] = platform_error
    else:
        try:
            host["boot_environments"] = [be.to_dict() for be in platform.boot_environments()]
        except BhypeError as exc:
            host["be_error"] = exc.message
        host["base_mode"] = platform.base_mode()
    # The VM driver's own answer (bhyve asks `bhyve -h` once), whatever installs the updates.
    try:
        host["can_suspend"] = suspend_supported(runtime)
    except BhypeError:  # no driver to ask: the VMs are shut down
        host["can_suspend"] = False
    principal = Principal(context.user or "root", "admin")
    tasks = list_tasks(runtime, principal, kind=CHECK_KIND, state="succeeded", limit=1)
    last = None
    if tasks:
        task = tasks[0]
        last = {"id": task.id, "result": task.result,
                "finished": task.finished.isoformat() if task.finished else None}
    registered = set(runtime.registry.tasks.names())
    plan = build_plan(vms, settings, updates_from_check(last), host, registered, datetime.now(UTC))
    plan["problems"] += service_problems(runtime, principal, settings.services, registered)
    return plan


def service_problems(runtime: Any, principal: Principal, services: list[str], registered: set[str]) -> list[str]:
    """Ask the ``service.stop``/``service.start`` kinds' own object checks now whether they
    would accept each service (an allow-list, say), so a refusal stops the plan, not a run
    whose VMs are already down."""
    problems = []
    for kind in SERVICE_KINDS:
        if kind not in registered or not services:
            continue
        check = runtime.registry.tasks[kind].authorize
        for name in services:
            try:
                if check is not None:
                    check(principal, {"name": name}, runtime)
            except BhypeError as exc:
                problems.append(f"{kind} refuses service {name}: {exc.message}")
    return problems
