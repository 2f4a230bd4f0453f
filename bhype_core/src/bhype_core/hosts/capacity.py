"""What a host offers, measured in-process (no host command): CPUs, memory, datastores, versions."""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlmodel import col

from bhype_core import __version__

MEMINFO = Path("/proc/meminfo")


def memory() -> tuple[int, int]:
    """``(total, free)`` bytes of RAM. Free is Linux's MemAvailable (proc(5)); elsewhere (FreeBSD)
    sysconf(3)'s _SC_AVPHYS_PAGES, the free page count."""
    page = os.sysconf("SC_PAGE_SIZE")
    total = os.sysconf("SC_PHYS_PAGES") * page
    try:
        for line in MEMINFO.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return total, int(line.split()[1]) * 1024
    except OSError:
        pass
    return total, os.sysconf("SC_AVPHYS_PAGES") * page


def datastores(runtime: Any) -> dict[str, dict[str, Any]]:
    """Each configured datastore: its backend, for directory datastores the free and total
    bytes of the file system holding it (``None`` where it cannot be measured here), for other
    backends their :meth:`~bhype_core.storage.base.StorageBackend.layout` (a ZFS datastore's
    ``dataset`` and ``disk_type``: what a move from another host of the group checks)."""
    from bhype_core.vm.services import open_datastore
    from bhype_core.vm.settings import vm_settings

    settings = vm_settings(runtime)
    found: dict[str, dict[str, Any]] = {}
    for name, config in settings.datastores.items():
        entry: dict[str, Any] = {"backend": config.backend, "free": None, "total": None}
        if config.backend == "directory":
            root = Path(config.path) if config.path else Path(runtime.settings.core.data_dir) / "datastore"
            probe = root if root.exists() else root.parent
            try:
                usage = shutil.disk_usage(probe)
                entry.update(free=usage.free, total=usage.total)
            except OSError:
                pass
        else:
            try:
                entry.update(open_datastore(runtime, name).layout())
            except Exception:  # a datastore that cannot be opened must not stop the heartbeat
                pass
        found[name] = entry
    return found


def library(runtime: Any) -> dict[str, list[str]]:
    """Each datastore's ISO library on this host (ISOs and template cloud images, by file
    name): what placement needs a host to hold for a VM's CD-ROM or disk source (issue 22).
    A datastore that cannot be read here lists nothing."""
    from bhype_core.vm.services import open_datastore
    from bhype_core.vm.settings import vm_settings

    found: dict[str, list[str]] = {}
    for name in vm_settings(runtime).datastores:
        try:
            found[name] = list(open_datastore(runtime, name).isos())
        except Exception:  # an unreachable datastore must not stop the heartbeat
            found[name] = []
    return found


def switches(runtime: Any, host: str) -> list[str]:
    """Names of the switches on ``host``."""
    from bhype_core.network.models import Switch

    with runtime.engine.connect() as connection:
        return sorted(connection.execute(select(col(Switch.name)).where(col(Switch.host) == host)).scalars())


def templates(runtime: Any) -> list[str]:
    """Names of the templates this host can build from."""
    from bhype_core.vm.services import template_catalog

    try:
        return template_catalog(runtime).names()
    except Exception:  # a broken admin template must not stop the registration
        return []


def versions(runtime: Any) -> dict[str, str]:
    """``bhype-core`` and each active plugin's distribution version."""
    found = {"bhype-core": __version__}
    for info in runtime.pm.infos():
        if info.status == "active" and info.distribution and info.distribution != "bhype-core":
            found[info.distribution] = info.version or ""
    return found


def measure(runtime: Any, host: str) -> dict[str, Any]:
    """The ``capacity`` JSON of ``core_host``."""
    from bhype_core.vm.settings import vm_settings

    total, free = memory()
    return {"cpus": os.cpu_count() or 1, "memory_total": total, "memory_free": free,
            "default_datastore": vm_settings(runtime).default_datastore,
            "datastores": datastores(runtime), "switches": switches(runtime, host), "templates": templates(runtime),
            "library": library(runtime)}
