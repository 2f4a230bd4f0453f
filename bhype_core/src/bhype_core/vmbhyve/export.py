"""bHype spec → a vm-bhyve guest config (``bhype export vm-bhyve VM``), so a user can go back.

Disks are written as ``diskN_dev="custom"`` with the full path the bHype datastore keeps them
at (config.sample: "custom … the disk name should be the full path to the file or device"),
so vm-bhyve opens the very same file or zvol. What vm-bhyve cannot express is listed in notes.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from typing import Any

from bhype_core.spec import VMSpec
from bhype_core.units import format_size
from bhype_core.vmbhyve.shconf import quote


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


def _wait(wait: bool | str) -> str:
    """graphics.wait as config.sample's graphics_wait: true → auto (install boot), always → yes."""
    return "yes" if wait == "always" else "auto" if wait else "no"


def export_conf(spec: VMSpec, disk_paths: Sequence[str]) -> tuple[str, list[str]]:
    """The ``<vm>.conf`` text for ``spec`` whose disks are at ``disk_paths``, and notes on what
    vm-bhyve cannot carry."""
    notes: list[str] = []
    lines: list[tuple[str, str]] = []
    boot = spec.boot
    lines.append(("loader", boot.mode))
    if boot.mode == "uefi":
        lines.append(("uefi_vars", "yes"))  # bHype always keeps the variables (uefi-vars.fd)
    if boot.mode == "bhyveload":
        env = dict(boot.loader_env)
        if "autoboot_delay" in env:
            lines.append(("loader_timeout", env.pop("autoboot_delay")))
        if env:
            lines.append(("bhyveload_args", " ".join(f"-e {k}={v}" for k, v in env.items())))
    if boot.mode == "grub":
        if boot.grub_root and boot.grub_root.startswith("hd0,"):
            lines.append(("grub_run_partition", boot.grub_root[4:]))
        elif boot.grub_root or boot.kernel:
            notes.append("grub root/host kernel: vm-bhyve boots hd0,<partition> from the guest's grub.cfg")
    cpus = spec.cpus
    lines += [("cpu", str(cpus.count)), ("cpu_sockets", str(cpus.sockets)), ("cpu_cores", str(cpus.cores)),
              ("cpu_threads", str(cpus.threads)), ("memory", format_size(spec.memory))]
    lines.append(("utctime", _yes(spec.clock == "utc")))
    lines.append(("uuid", str(spec.uuid)))
    lines.append(("comports", "com1" if spec.serial else ""))
    for index, disk in enumerate(spec.disks):
        lines += [(f"disk{index}_type", disk.bus), (f"disk{index}_dev", "custom"),
                  (f"disk{index}_name", disk_paths[index])]
        if disk.sectorsize:
            lines.append((f"disk{index}_opts", f"sectorsize={disk.sectorsize}"))
    for index, nic in enumerate(spec.nics):
        lines.append((f"network{index}_type", nic.model))
        if nic.switch:
            lines.append((f"network{index}_switch", nic.switch))
        if nic.mac:
            lines.append((f"network{index}_mac", nic.mac))
        if nic.vlan:
            notes.append(f"nics.{index}.vlan {nic.vlan}: vm-bhyve sets VLANs per switch (vlan_<switch>)")
    lines.append(("virt_random", _yes(spec.rng)))
    graphics = spec.graphics
    if graphics.vnc:
        lines += [("graphics", "yes"), ("graphics_res", graphics.resolution), ("graphics_wait", _wait(graphics.wait)),
                  ("graphics_vga", graphics.vga), ("graphics_listen", "127.0.0.1"),
                  ("xhci_mouse", _yes(graphics.tablet))]
        if graphics.password:
            lines.append(("vnc_password", graphics.password))
    if spec.extra.bhyve:
        lines.append(("bhyve_options", shlex.join(spec.extra.bhyve)))
    if spec.cdrom:
        notes.append(f"cdrom {spec.cdrom}: attach it with 'vm install' in vm-bhyve")
    if spec.cloud_init is not None:
        notes.append("cloud_init: vm-bhyve has no NoCloud seed; the guest keeps what it already applied")
    if spec.autostart.enabled:
        notes.append(f"autostart: add {spec.name} to rc.conf vm_list (order {spec.autostart.order}, "
                     f"vm_delay {spec.autostart.delay})")
    if spec.extra.qemu:
        notes.append("extra.qemu: not used by bhyve")
    text = "".join(f"{key}={quote(value)}\n" for key, value in lines)
    return text, notes


def export_summary(spec: VMSpec, disk_paths: Sequence[str]) -> dict[str, Any]:
    """``config`` text, ``notes`` and where vm-bhyve expects it (``<vm_dir>/<vm>/<vm>.conf``)."""
    text, notes = export_conf(spec, disk_paths)
    return {"name": spec.name, "file": f"{spec.name}/{spec.name}.conf", "config": text, "notes": notes}
