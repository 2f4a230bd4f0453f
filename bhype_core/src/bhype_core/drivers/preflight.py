"""Preflight checks both drivers share: files the VM needs, VNC port, memory, already running.

Each check returns :class:`~bhype_core.drivers.base.Problem` records naming the spec field,
what is wrong and how to fix it; nothing here changes the host.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from bhype_core.drivers.base import Attachments, Problem, VMStatus
from bhype_core.spec import VMSpec
from bhype_core.units import human_size


def already_running(spec: VMSpec, status: VMStatus) -> list[Problem]:
    """The VM must not run already."""
    if not status.active:
        return []
    return [Problem("name", f"VM {spec.name} is already {status.state.value} (pid {status.pid})", "stop it first")]


def local_runner(target: str) -> list[Problem]:
    """The hypervisor, its supervisor and the VM's sockets run on this machine (the worker's):
    with a remote runner target the disks and VM directory are on another host."""
    if target == "local":
        return []
    return [Problem("name", f"VMs run where the worker runs, but runner.target is {target}: the VM's disks and "
                            "directory are on that host", 'run the worker on the VM host with runner.target = "local"')]


def attached_files(spec: VMSpec, attachments: Attachments) -> list[Problem]:
    """Disk images, ISO, seed ISO and a host kernel/initrd exist where the start will look."""
    problems: list[Problem] = []
    if len(attachments.disk_paths) != len(spec.disks):
        problems.append(
            Problem(
                "disks",
                f"{len(attachments.disk_paths)} disk paths given for {len(spec.disks)} disks",
                "resolve every disk's volume in its datastore before starting",
            )
        )
    for index, path in enumerate(attachments.disk_paths):
        if not os.path.exists(path):
            problems.append(
                Problem(
                    f"disks.{index}", f"disk image not found at {path}", f"create the disk, or fix disks.{index}.volume"
                )
            )
    if spec.cdrom is not None:
        iso = attachments.cdrom_path
        if not iso or not os.path.isfile(iso):
            problems.append(
                Problem(
                    "cdrom", f"ISO {spec.cdrom} not found at {iso or '(unresolved)'}", "upload it to the ISO library"
                )
            )
    if attachments.cloud_init_iso and not os.path.isfile(attachments.cloud_init_iso):
        problems.append(
            Problem("cloud_init", f"seed ISO not found at {attachments.cloud_init_iso}", "rebuild the seed")
        )
    for key in ("kernel", "initrd"):
        path = getattr(spec.boot, key)
        if path and not os.path.isfile(path):
            problems.append(Problem(f"boot.{key}", f"{key} not found at {path}", f"fix boot.{key}"))
    return problems


def vnc_port(spec: VMSpec, find_port: Callable[[], int | None]) -> list[Problem]:
    """A loopback port for the VNC console must be free (``find_port`` peeks, claims nothing)."""
    if not spec.graphics.vnc or find_port() is not None:
        return []
    return [
        Problem(
            "graphics.vnc",
            "no free VNC port on 127.0.0.1 between 5900 and 6099",
            "stop a VM or the program holding those ports, or turn graphics.vnc off",
        )
    ]


def memory(spec: VMSpec, total: int | None, available: int | None, *, warn_only_available: bool) -> list[Problem]:
    """Guest memory against the host's: more than the total is an error; more than what is
    available now is an error, or a warning where memory can still be freed (ZFS ARC)."""
    if total is not None and spec.memory > total:
        return [
            Problem(
                "memory",
                f"{human_size(spec.memory)} requested but the host has only {human_size(total)} of RAM",
                "lower the VM's memory",
            )
        ]
    if available is not None and spec.memory > available:
        return [
            Problem(
                "memory",
                f"{human_size(spec.memory)} requested but only {human_size(available)} is available now",
                "stop other VMs or lower the VM's memory"
                + (" (the ZFS ARC may give memory back; cap it with vfs.zfs.arc.max)" if warn_only_available else ""),
                severity="warning" if warn_only_available else "error",
            )
        ]
    return []


def linux_memory(meminfo: Path = Path("/proc/meminfo")) -> tuple[int | None, int | None]:
    """(MemTotal, MemAvailable) in bytes from proc(5) ``/proc/meminfo``; Nones when unreadable."""
    values: dict[str, int] = {}
    try:
        for line in meminfo.read_text().splitlines():
            key, _, rest = line.partition(":")
            parts = rest.split()
            if parts and parts[0].isdigit():
                values[key] = int(parts[0]) * 1024  # the file counts kB
    except OSError:
        return None, None
    return values.get("MemTotal"), values.get("MemAvailable")
