"""``show-command``: every host command starting a VM would run, on either platform, run nothing."""

from __future__ import annotations

import shlex
from dataclasses import replace
from typing import Any

from bhype_core.vm.attach import attachments
from bhype_core.vm.models import VM
from bhype_core.vm.network import placeholder, tap_plan
from bhype_core.vm.services import active_platform, driver_for, open_datastore


def show_command(runtime: Any, vm: VM, platform: str | None = None) -> dict[str, Any]:
    """The driver's plan for starting ``vm`` on ``platform`` (default: this host's).

    Paths are this host's datastore paths; resources a start allocates (tap, nmdm console,
    VNC port) appear as the driver plans them. Nothing is run, nothing is allocated.

    :raises ValidationErrors: unknown platform, or a spec that platform's hypervisor refuses
        (e.g. bhyve's VNC framebuffer without UEFI), with field paths.
    :returns: ``name``, ``platform``, ``driver`` and ``commands`` (``argv``, ``purpose`` and
        ``line``, the argv shell-quoted for reading and copying).
    """
    platform = platform or active_platform(runtime)
    driver = driver_for(runtime, platform)
    store = open_datastore(runtime, vm.datastore)
    spec = vm.spec_model()
    attached = attachments(store, spec, planned=True)
    network: list = []
    if platform == "freebsd" and spec.nics:
        attached = replace(attached, taps=[placeholder(i) for i in range(len(spec.nics))])
        network = tap_plan(spec)
    planned = network + driver.plan(spec, store.vm_dir(vm.name), attached)
    return {
        "name": vm.name,
        "platform": platform,
        "driver": getattr(driver, "name", "") or type(driver).__name__,
        "commands": [
            {"argv": list(command.argv), "purpose": command.purpose, "line": shlex.join(command.argv)}
            for command in planned
        ],
    }


def format_plan(plan: dict[str, Any]) -> str:
    """The plan as text: one ``# purpose`` comment and one command line per step."""
    lines = [f"# VM {plan['name']} on {plan['platform']} ({plan['driver']} driver)"]
    for command in plan["commands"]:
        lines += [f"# {command['purpose']}", command["line"]]
    return "\n".join(lines)
