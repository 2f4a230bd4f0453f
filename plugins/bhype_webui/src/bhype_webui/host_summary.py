"""The dashboard's host summary: CPUs and load, memory, datastore space and what running VMs
take, read without any host command (the API process runs none): sysconf(3), getloadavg(3),
statvfs(2) and, on Linux, /proc/meminfo (proc(5))."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from bhype_core.plugin_api import VM, is_admin, parse_size, vm_settings

ACTIVE = ("starting", "running", "stopping")
DIRECTORY_DEFAULT = "datastore"  # bhype_core.builtins.storage: under core.data_dir


@dataclass(frozen=True)
class Space:
    """Size and use of one datastore (``None``: its backend is not a local directory)."""

    name: str
    backend: str
    path: str
    total: int | None = None
    used: int | None = None
    free: int | None = None

    @property
    def in_use(self) -> int | None:
        """Bytes not free to bHype: everything but ``free`` (statvfs(2) ``f_bavail``), so the
        blocks reserved for root count as in use. The bar and the "free of" text both come from
        this one figure (issue 14: they used to disagree by the reserve)."""
        return self.total - self.free if self.total and self.free is not None else None

    @property
    def percent(self) -> int | None:
        """``in_use`` as a whole percentage of ``total``."""
        return round(100 * self.in_use / self.total) if self.total and self.in_use is not None else None


@dataclass(frozen=True)
class HostSummary:
    """What the dashboard shows about the host."""

    cpus: int
    load: tuple[float, float, float] | None
    memory_total: int | None
    memory_available: int | None
    vm_memory: int  # given to the caller's active VMs (an admin: all)
    vm_cpus: int
    datastores: list[Space]

    @property
    def memory_percent(self) -> int | None:
        if not self.memory_total or self.memory_available is None:
            return None
        return round(100 * (self.memory_total - self.memory_available) / self.memory_total)


def physical_memory() -> int | None:
    """Physical RAM in bytes (sysconf(3) ``_SC_PHYS_PAGES``, Linux and FreeBSD)."""
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        return None


def available_memory(meminfo: Path = Path("/proc/meminfo")) -> int | None:
    """Memory available to new processes: ``MemAvailable`` of proc(5) on Linux, else free pages
    (sysconf(3) ``_SC_AVPHYS_PAGES``: FreeBSD counts only free pages, so this is a lower bound)."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024  # proc(5): in kB
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_AVPHYS_PAGES")
    except (ValueError, OSError):
        return None


def datastore_space(runtime: Any) -> list[Space]:
    """statvfs(2) of every directory datastore (other backends are named without figures)."""
    spaces = []
    for name, config in sorted(vm_settings(runtime).datastores.items()):
        if config.backend != "directory":
            spaces.append(Space(name, config.backend, ""))
            continue
        path = Path(config.path or runtime.settings.core.data_dir / DIRECTORY_DEFAULT)
        probe = path
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent  # a datastore not created yet: the file system it will be on
        try:
            usage = shutil.disk_usage(probe)
        except OSError:
            spaces.append(Space(name, config.backend, str(path)))
            continue
        spaces.append(Space(name, config.backend, str(path), usage.total, usage.used, usage.free))
    return spaces


def spec_cpus(spec: dict[str, Any]) -> int:
    """The vCPU count of stored spec data (a count, or sockets × cores × threads)."""
    cpus = spec.get("cpus")
    if isinstance(cpus, dict):
        return int(cpus.get("count") or cpus.get("sockets", 1) * (cpus.get("cores") or 1) * cpus.get("threads", 1))
    return int(cpus or 1)


def host_summary(runtime: Any, principal: Any) -> HostSummary:
    """The summary for ``principal``: host figures, plus what their active VMs (admins: all) use."""
    query = select(col(VM.spec)).where(col(VM.state).in_(ACTIVE))
    if not is_admin(principal):
        query = query.where(col(VM.owner) == principal.name)
    vm_memory = vm_cpus = 0
    with Session(runtime.engine) as db:
        for (spec,) in db.execute(query).all():
            spec = spec or {}
            try:
                vm_memory += parse_size(spec.get("memory", 0))
            except ValueError:
                pass  # stored specs are valid; a hand-edited row must not break the dashboard
            vm_cpus += spec_cpus(spec)
    try:
        load: tuple[float, float, float] | None = os.getloadavg()
    except OSError:
        load = None
    return HostSummary(
        cpus=os.cpu_count() or 1,
        load=load,
        memory_total=physical_memory(),
        memory_available=available_memory(),
        vm_memory=vm_memory,
        vm_cpus=vm_cpus,
        datastores=datastore_space(runtime),
    )
