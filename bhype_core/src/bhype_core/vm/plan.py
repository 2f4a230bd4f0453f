"""``show-command``: every host command starting a VM would run, on either platform, run nothing."""

from __future__ import annotations

import shlex
from dataclasses import replace
from pathlib import Path
from typing import Any

from bhype_core.cloudinit import SEED_FILE, wants_seed
from bhype_core.drivers.base import HostCommand
from bhype_core.network.service import switch_configs
from bhype_core.network.taps import plan_nics, planned_taps
from bhype_core.vm.attach import attachments
from bhype_core.vm.models import VM
from bhype_core.vm.services import active_platform, driver_for, open_datastore


def show_command(runtime: Any, vm: VM, platform: str | None = None, mode: str = "normal") -> dict[str, Any]:
    """The plan for starting ``vm`` on ``platform`` (default: this host's) in start ``mode``
    (``normal``, ``install``, ``rescue``: :mod:`bhype_core.drivers.boot_plan`): the NICs' tap
    commands, then the driver's.

    Paths are this host's datastore paths; resources a start allocates (tap, nmdm console,
    VNC port) appear as the driver and the switch code plan them, and the cloud-init seed
    (written by bHype itself at each start) at the path it will have. Nothing is run, nothing
    is allocated.

    :raises ValidationErrors: unknown platform, or a spec that platform's hypervisor refuses
        (e.g. bhyve's VNC framebuffer without UEFI), with field paths.
    :returns: ``name``, ``platform``, ``driver`` and ``commands`` (``argv``, ``purpose`` and
        ``line``, the argv shell-quoted for reading and copying).
    """
    platform = platform or active_platform(runtime)
    driver = driver_for(runtime, platform)
    store = open_datastore(runtime, vm.datastore)
    spec = vm.spec_model()
    vm_dir = store.vm_dir(vm.name)
    seed = str(Path(vm_dir) / SEED_FILE) if wants_seed(spec) else None
    attached = replace(attachments(store, spec, planned=True), taps=planned_taps(spec, platform), cloud_init_iso=seed,
                       start_mode=mode)
    switches = switch_configs(runtime) if any(nic.switch for nic in spec.nics) else {}
    network = [HostCommand(argv, purpose) for argv, purpose in plan_nics(spec, platform, switches)]
    planned = network + driver.plan(spec, vm_dir, attached)
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
