"""Placement on create (issue 22): the chosen host, or the reachable host with the most free
memory that has the needed switches, datastore, template and ISO library files; else a refusal
naming each reason."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import select
from sqlmodel import col

from bhype_core.errors import ValidationErrors
from bhype_core.hosts.registry import REACHABLE, HostState, host_states
from bhype_core.units import human_size


def host_switches(runtime: Any) -> dict[str, set[str]]:
    """Switch names by host, read now (a switch created a second ago counts)."""
    from bhype_core.network.models import Switch

    found: dict[str, set[str]] = {}
    with runtime.engine.connect() as connection:
        for host, name in connection.execute(select(col(Switch.host), col(Switch.name))):
            found.setdefault(host, set()).add(name)
    return found


def library_files(spec: Any) -> list[str]:
    """The ISO library files a VM of ``spec`` needs on its host: its CD-ROM's ISO and each
    disk's cloud image source (a template's image, fetched into one host's library)."""
    files = [getattr(spec, "cdrom", None)] + [getattr(disk, "source", None) for disk in getattr(spec, "disks", [])]
    return sorted({name for name in files if isinstance(name, str) and name})


def hosts_holding(runtime: Any, datastore: str, name: str) -> list[str]:
    """The registered hosts whose ISO library in ``datastore`` holds the file ``name`` (as
    their last heartbeat measured it)."""
    return [state.host.name for state in host_states(runtime)
            if name in ((state.host.capacity or {}).get("library") or {}).get(datastore, [])]


def group_library(runtime: Any, datastore: str) -> set[str]:
    """Every file name in datastore ``datastore``'s ISO library of any registered host (a VM
    spec may name one; placement then puts the VM on a host that holds it). Empty when the
    registry cannot be read (a runtime without the host table)."""
    try:
        states = host_states(runtime)
    except Exception:  # e.g. a test runtime without core_host: the local library is all there is
        return set()
    return {name for state in states for name in ((state.host.capacity or {}).get("library") or {}).get(datastore, [])}


def misfits(state: HostState, switches: set[str], have_switches: set[str], datastore: str,
            template: str | None, memory: int, files: Sequence[str] = ()) -> list[str]:
    """Why ``state``'s host cannot take the VM (empty: it can)."""
    capacity = state.host.capacity or {}
    reasons = []
    if state.state != REACHABLE:
        reasons.append("unreachable")
    missing = sorted(switches - have_switches)
    if missing:
        reasons.append(f"no switch {', '.join(missing)}")
    if datastore not in (capacity.get("datastores") or {}):
        reasons.append(f"no datastore {datastore}")
    if template and template not in (capacity.get("templates") or []):
        reasons.append(f"no template {template}")
    held = (capacity.get("library") or {}).get(datastore)
    if files and held is not None:  # a host registered before hosts listed their library is not judged
        missing_files = [name for name in files if name not in held]
        if missing_files:
            reasons.append(f"no {', '.join(missing_files)} in its ISO library")
    free = capacity.get("memory_free")
    if isinstance(free, int) and free < memory:
        reasons.append(f"{human_size(free)} free memory, needs {human_size(memory)}")
    return reasons


def place(runtime: Any, spec: Any, datastore: str, chosen: str | None = None) -> str | None:
    """The host to create the VM of ``spec`` on, or ``None`` on a single host (no placement:
    the task goes where this process's host is, as before issue 22).

    With ``chosen`` that host must be registered and fit; otherwise the best fit wins (most free
    memory, then name).

    :raises ValidationErrors: at ``host``, naming every host and why it does not fit.
    """
    states = host_states(runtime)
    if chosen is None and len(states) <= 1:
        return states[0].host.name if states else None
    switches = {nic.switch for nic in getattr(spec, "nics", []) if getattr(nic, "switch", None)}
    template = getattr(spec, "template", None)
    memory = int(getattr(spec, "memory", 0) or 0)
    files = library_files(spec)
    by_host = host_switches(runtime)
    if chosen is not None:
        states = [state for state in states if state.host.name == chosen]
        if not states:
            raise ValidationErrors([("host", f"no host named {chosen!r} is registered (see `bhype hosts`)")])
    fits, refusals = [], []
    for state in states:
        reasons = misfits(state, switches, by_host.get(state.host.name, set()), datastore, template, memory, files)
        if reasons:
            refusals.append(f"{state.host.name}: {'; '.join(reasons)}")
        else:
            fits.append(state)
    if not fits:
        raise ValidationErrors([("host", "no host fits this VM: " + " | ".join(refusals))])
    best = max(fits, key=lambda state: ((state.host.capacity or {}).get("memory_free") or 0, state.host.name))
    return best.host.name
