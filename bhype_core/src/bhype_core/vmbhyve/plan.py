"""The import plan: what ``vmbhyve.import`` would do, built without changing anything.

Each vm-bhyve guest becomes a VM to import (spec data, disks to adopt in place, NVRAM file)
or a refusal with its reason (running, locked, a disk that cannot be adopted, a name clash);
each switch the guests use is created, already present, or cannot be registered (its NICs then
stay unconnected, as vm-bhyve leaves a NIC whose switch is missing); templates become bHype
admin templates (``vmbhyve-<name>``, :mod:`bhype_core.vmbhyve.templates`); every key that does
not map is a row of ``unmapped``.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Collection
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bhype_core.vmbhyve.datastore import SwitchDef, VmBhyveHost
from bhype_core.vmbhyve.mapping import DiskSource, GuestPlan, Unmapped, autostart_for, map_guest, truthy
from bhype_core.vmbhyve.templates import plan_templates

# Names a running vm-bhyve guest shows (reference 1.8): /dev/vmm/<name> and "bhyve: <name>".
RunningCheck = Callable[[str], str | None]


def zfs_volsize_argv(dataset: str) -> list[str]:
    """zfs-get(8) ``-Hp -o value volsize <dataset>``: the zvol's size in bytes."""
    return ["zfs", "get", "-Hp", "-o", "value", "volsize", dataset]


def file_size(source: DiskSource) -> int | None:
    """Bytes of a regular image file (never following a symlink), else ``None``."""
    try:
        info = os.lstat(source.path)
    except OSError:
        return None
    return info.st_size if stat.S_ISREG(info.st_mode) else None


def switch_fields(switch: SwitchDef, unmapped: list[Unmapped]) -> dict[str, Any] | None:
    """bHype switch fields for a vm-bhyve switch, or ``None`` when it cannot be registered."""
    owner = f"switch {switch.name}"
    if switch.type != "standard":
        unmapped.append(Unmapped(owner, f"type_{switch.name}", switch.type, "bHype switches are bridges it "
                                 "builds itself (vm-bhyve type standard); its NICs are left unconnected"))
        return None
    fields: dict[str, Any] = {"description": "imported from vm-bhyve"}
    if switch.ports:
        fields["uplink"] = switch.ports[0]
        for port in switch.ports[1:]:
            unmapped.append(Unmapped(owner, f"ports_{switch.name}", port, "a bHype switch has one uplink"))
    if switch.vlan.isdigit():
        fields["vlan"] = int(switch.vlan)
    if switch.mtu.isdigit():
        fields["mtu"] = int(switch.mtu)
    if switch.address:
        fields["address"] = switch.address
    if truthy(switch.private):
        unmapped.append(Unmapped(owner, f"private_{switch.name}", switch.private,
                                 "bHype switches have no private (isolated) ports"))
    return fields


def build_plan(
    host: VmBhyveHost,
    *,
    size_of: Callable[[DiskSource], int | None],
    running: RunningCheck,
    existing_vms: Collection[str] = (),
    existing_switches: Collection[str] = (),
    only: Collection[str] | None = None,
    disk_check: Callable[[DiskSource], str | None] | None = None,
    templates_dir: Path | None = None,
) -> dict[str, Any]:
    """The whole plan as JSON-ready data (see the module docstring).

    :param running: a reason the guest is running (``None`` when stopped).
    :param disk_check: a reason a disk cannot be adopted by the target datastore.
    :param only: import just these guests.
    :param templates_dir: where imported templates go (each template row's ``action`` then
        says whether its file is new, the same, or taken).
    """
    unmapped: list[Unmapped] = []
    defs = {s.name: s for s in host.switches}
    switches: dict[str, dict[str, Any]] = {}
    plans: list[GuestPlan] = []
    for guest in host.guests:
        if only is not None and guest.name not in only:
            continue
        plan = map_guest(guest, size_of)
        reason = running(guest.name)
        if reason:
            plan.refused.append(f"running under vm-bhyve ({reason}): stop it with 'vm stop {guest.name}' and "
                                "import again; bHype cannot take over a bhyve process it did not start")
        lock = guest.directory / "run.lock"
        if lock.is_file() and not reason:
            plan.refused.append(f"vm-bhyve's lock {lock} says it runs (maybe on another host sharing the "
                                "storage); remove the lock once it is stopped everywhere")
        if guest.name in existing_vms:
            plan.refused.append(f"a bHype VM named {guest.name!r} exists already")
        for disk in plan.disks:
            problem = disk_check(disk) if disk_check else None
            if problem:
                plan.refused.append(f"disk{disk.index}: {problem}")
        autostart = autostart_for(guest.name, host.vm_list, host.vm_delay)
        if autostart:
            plan.spec["autostart"] = autostart
        for nic_index, nic in enumerate(plan.spec.get("nics", [])):
            name = nic.get("switch")
            if not name:
                continue
            if name not in switches:
                switches[name] = _switch_entry(name, defs.get(name), existing_switches, unmapped)
            if switches[name]["action"] == "skip":
                del nic["switch"]
                plan.unmapped.append(Unmapped(guest.name, f"network{nic_index}_switch", name,
                                              f"switch not registered ({switches[name]['reason']}): "
                                              "the NIC is imported unconnected"))
        plans.append(plan)
    templates = plan_templates(host.templates, templates_dir)
    for template in templates:
        unmapped.extend(template.pop("unmapped"))
    vms = []
    for plan in plans:
        unmapped.extend(plan.unmapped)
        vms.append({"name": plan.name, "directory": str(plan.directory),
                    "action": "refuse" if plan.refused else "import", "refused": plan.refused,
                    "spec": plan.spec, "disks": [asdict(d) for d in plan.disks], "nvram": plan.nvram})
    return {
        "vms": vms,
        "switches": list(switches.values()),
        "templates": templates,
        "unmapped": [asdict(u) for u in unmapped],
        "warnings": list(host.warnings),
    }


def _switch_entry(name: str, switch: SwitchDef | None, existing: Collection[str],
                  unmapped: list[Unmapped]) -> dict[str, Any]:
    if name in existing:
        return {"name": name, "action": "exists", "fields": {}, "reason": "already a bHype switch"}
    if switch is None:
        return {"name": name, "action": "skip", "fields": {}, "reason": "not in system.conf switch_list"}
    fields = switch_fields(switch, unmapped)
    if fields is None:
        return {"name": name, "action": "skip", "fields": {}, "reason": f"type {switch.type}"}
    return {"name": name, "action": "create", "fields": fields, "reason": ""}


def format_plan(plan: dict[str, Any]) -> str:
    """The plan as text: VMs, switches, then the table of what could not be mapped and why."""
    lines = ["VMs:"]
    for vm in plan["vms"]:
        disks = ", ".join(f"{d['volume']}={d['path']}" for d in vm["disks"]) or "no disks"
        lines.append(f"  {vm['action']:7} {vm['name']:20} {disks}")
        lines += [f"          refused: {reason}" for reason in vm["refused"]]
    lines.append("Switches:")
    lines += [f"  {s['action']:7} {s['name']:20} {s['reason'] or s['fields']}" for s in plan["switches"]] or ["  none"]
    if plan["templates"]:
        lines.append("Templates:")
        for t in plan["templates"]:
            why = f" ({t['reason']})" if t["reason"] else ""
            lines.append(f"  {t['action']:7} {t['name']:20} as {t['bhype_name']}{why}")
    rows = plan["unmapped"]
    lines.append(f"Not mapped ({len(rows)}):")
    if rows:
        widths = [max(len(str(r[k])) for r in rows) for k in ("owner", "key", "value")]
        widths = [max(w, len(h)) for w, h in zip(widths, ("FOR", "KEY", "VALUE"), strict=True)]
        lines.append(f"  {'FOR':{widths[0]}}  {'KEY':{widths[1]}}  {'VALUE':{widths[2]}}  WHY")
        for row in rows:
            lines.append(f"  {row['owner']:{widths[0]}}  {row['key']:{widths[1]}}  {row['value']:{widths[2]}}  "
                         f"{row['reason']}")
    lines += [f"warning: {w}" for w in plan["warnings"]]
    return "\n".join(lines)
