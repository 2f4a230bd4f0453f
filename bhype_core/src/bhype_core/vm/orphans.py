"""The orphan sweep: VM directories, taps and bridges that no record and no intent owns.

The undo journal (:mod:`bhype_core.tasks.intents`) cleans up after tasks interrupted from
now on; this sweep is the backstop for what older crashes left (a VM directory with a 1.6 GB
disk and no row, issue 11). It runs as the ``vm.sweep-orphans`` periodic job, hourly and when
a worker starts, and reports what it removed in the job's log and a ``host.orphans_removed``
event.

Conservative by construction: only names made by bHype's own scheme are looked at
(``<datastore>/vms/<vm name>``; Linux taps ``bh<8 hex>n<N>``; bridges ``vm-…`` and
``vm<vlan>-<hex>``), and a thing is left alone when a record names it, an undo intent or a
queued/running task names it, or (directories) it changed within ``vm.orphan_grace`` seconds.
Interfaces are swept only with ``vm.sweep_interfaces = true``: several bHype instances (test
runs, a second data directory) may share one host's interfaces, and only a host running one
instance can tell that a bridge is nobody's.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, select

from bhype_core.db.intent_models import TaskIntent
from bhype_core.db.task_models import QUEUED, RUNNING, Task
from bhype_core.errors import BhypeError
from bhype_core.events import Event
from bhype_core.vm.models import VM
from bhype_core.vm.services import open_datastore
from bhype_core.vm.settings import vm_settings

TAP_RE = re.compile(r"^bh([0-9a-f]{8})n\d+$")  # network.models.linux_tap_name
BRIDGE_RE = re.compile(r"^vm(\d{0,4})-(.+)$")  # network.models.bridge_name / vlan_bridge_name
DEFAULT_GRACE = 600.0


@dataclass
class Sweep:
    """What one sweep removed, and what it could not."""

    removed: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def claimed_names(engine: Any) -> set[str]:
    """Names that pending intents or queued/running tasks mention (``name`` argument)."""
    names: set[str] = set()
    with Session(engine) as db:
        for arguments in db.exec(select(TaskIntent.arguments)).all():
            if isinstance(arguments, dict) and isinstance(arguments.get("name"), str):
                names.add(arguments["name"])
            config = arguments.get("config") if isinstance(arguments, dict) else None
            if isinstance(config, dict) and isinstance(config.get("name"), str):
                names.add(config["name"])
        busy = db.exec(select(Task.arguments).where(col(Task.state).in_([QUEUED, RUNNING]))).all()
        for arguments in busy:
            if isinstance(arguments, dict) and isinstance(arguments.get("name"), str):
                names.add(arguments["name"])
    return names


def orphan_vm_dirs(runtime: Any, datastore: str, claimed: set[str], grace: float, now: float) -> list[str]:
    """VM names of ``datastore`` with a directory but no row (nor claim, nor recent change)."""
    from bhype_core.spec_parts import NAME_RE

    store = open_datastore(runtime, datastore)
    parent = store.vm_dir("probe").parent
    if not parent.is_dir():
        return []
    with Session(runtime.engine) as db:
        known = set(db.exec(select(VM.name).where(VM.datastore == datastore)).all())
    orphans = []
    for entry in sorted(os.scandir(parent), key=lambda item: item.name):
        if not NAME_RE.match(entry.name) or entry.name in known or entry.name in claimed:
            continue
        if now - entry.stat(follow_symlinks=False).st_mtime < grace:
            continue
        orphans.append(entry.name)
    return orphans


def _digest(text: str, length: int) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:length]


def orphan_interfaces(interfaces: set[str], vm_uuids: list[str], switch_names: list[str],
                      claimed: set[str]) -> list[str]:
    """bHype-named taps and bridges no VM or switch record (nor pending intent) accounts for.

    A tap ``bh<8 hex>n<N>`` belongs to the VM whose UUID hashes to those 8 hex digits; a bridge
    ``vm-<name or hash>`` or ``vm<vlan>-<hash>`` to the switch whose name gives it.
    """
    from bhype_core.network.models import bridge_name, vlan_bridge_name

    taps = {_digest(uuid, 8) for uuid in vm_uuids}
    names = [*switch_names, *claimed]
    mains = {bridge_name(name) for name in names}
    orphans = []
    for interface in sorted(interfaces):
        tap = TAP_RE.match(interface)
        if tap is not None:
            if tap.group(1) not in taps:
                orphans.append(interface)
            continue
        bridge = BRIDGE_RE.match(interface)
        if bridge is None:
            continue
        vlan = bridge.group(1)
        if not vlan:
            if interface not in mains:
                orphans.append(interface)
        elif 1 <= int(vlan) <= 4094 and all(vlan_bridge_name(name, int(vlan)) != interface for name in names):
            orphans.append(interface)
    return orphans


def sweep(runtime: Any, log: Any, now: float | None = None) -> Sweep:
    """Remove orphaned VM directories (every datastore) and, with ``vm.sweep_interfaces``,
    orphaned taps and bridges; ``log(line)`` is told each removal."""
    settings = vm_settings(runtime)
    grace = float(getattr(settings, "orphan_grace", DEFAULT_GRACE))
    now = time.time() if now is None else now
    claimed = claimed_names(runtime.engine)
    outcome = Sweep()
    for datastore in sorted(settings.datastores):
        try:
            names = orphan_vm_dirs(runtime, datastore, claimed, grace, now)
        except BhypeError as exc:  # a datastore whose backend is missing: not ours to judge
            log(f"datastore {datastore} not swept: {exc}")
            continue
        store = open_datastore(runtime, datastore)
        for name in names:
            path = str(store.vm_dir(name))
            try:
                store.remove_vm_dir(name)
            except Exception as exc:
                outcome.failed.append(f"{path}: {exc}")
                log(f"could not remove orphaned VM directory {path}: {exc}")
                continue
            outcome.removed.append(f"VM directory {path}")
            log(f"removed orphaned VM directory {path} (no VM record names it)")
    if getattr(settings, "sweep_interfaces", False):
        _sweep_interfaces(runtime, claimed, outcome, log)
    return outcome


def _sweep_interfaces(runtime: Any, claimed: set[str], outcome: Sweep, log: Any) -> None:
    from bhype_core.network.models import Switch
    from bhype_core.network.service import switch_host

    host = switch_host(runtime, log)
    with Session(runtime.engine) as db:
        uuids = list(db.exec(select(VM.uuid)).all())
        switches = list(db.exec(select(Switch.name)).all())
    for interface in orphan_interfaces(host.interfaces(), uuids, switches, claimed):
        host.remove_interfaces([interface])  # logs its own failure
        outcome.removed.append(f"interface {interface}")
        log(f"removed orphaned interface {interface} (no VM or switch record names it)")


def sweep_job(context: Any) -> dict[str, Any]:
    """Periodic job ``vm.sweep-orphans``: :func:`sweep`, reported in the log and an event."""
    outcome = sweep(context.runtime, context.log)
    if outcome.removed or outcome.failed:
        context.runtime.notify(Event(
            kind="host.orphans_removed",
            message=f"removed {len(outcome.removed)} orphaned item(s) no record owned: "
                    + "; ".join(outcome.removed) + (f"; failed: {'; '.join(outcome.failed)}" if outcome.failed else ""),
            severity="warning" if not outcome.failed else "error",
            subject="host",
            data={"removed": outcome.removed, "failed": outcome.failed},
        ))
    return {"removed": outcome.removed, "failed": outcome.failed}
