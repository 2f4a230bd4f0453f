"""What the agent serves: BHYPE-MIB's host scalars and bhypeVmTable, built from the VM records
(``list_vms``) and facts this process already has, as a sorted snapshot (pure apart from the
one database read; no host command)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from bhype_core.plugin_api import parse_size
from bhype_snmp import oids

GAUGE_MAX = 2**32 - 1
MIB = 1024 * 1024
RUNNING = ("running", "starting", "stopping")


@dataclass(frozen=True)
class VmRow:
    """The columns the table needs of one VM record."""

    id: int
    name: str
    uuid: str
    state: str
    owner: str
    vcpus: int
    memory: int  # bytes
    since: datetime | None  # when the state last changed (the record's ``updated``)


def _count(value: Any) -> int:
    try:
        return int(value.get("count", 0) if isinstance(value, dict) else value or 0)
    except (TypeError, ValueError):
        return 0


def _bytes(value: Any) -> int:
    try:
        return parse_size(value) if isinstance(value, str) else int(value or 0)
    except (TypeError, ValueError):
        return 0


def vm_rows(records: Iterable[Any]) -> list[VmRow]:
    """``list_vms`` rows → :class:`VmRow`: the stored spec's CPU count and memory (as written:
    ``2``/``{"count": 2}``, ``"96M"``/bytes); a part that does not parse shows as 0 rather
    than hiding the VM."""
    rows = []
    for record in records:
        spec = record.spec if isinstance(record.spec, dict) else {}
        rows.append(VmRow(id=record.id, name=record.name, uuid=record.uuid, state=record.state, owner=record.owner,
                          vcpus=_count(spec.get("cpus")), memory=_bytes(spec.get("memory")), since=record.updated))
    return rows


def host_facts() -> dict[str, Any]:
    """bHype's version, logical CPUs and physical memory (os.cpu_count, sysconf(3)): no command."""
    try:
        core = version("bhype-core")
    except PackageNotFoundError:
        core = "unknown"
    try:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        memory = 0
    return {"version": core, "cpus": os.cpu_count() or 0, "memory": memory}


def _gauge(value: int) -> int:
    return max(0, min(int(value), GAUGE_MAX))


def uptime_ticks(row: VmRow, now: datetime) -> int:
    """Hundredths of a second the VM has run since its state last changed; 0 when not running."""
    if row.state not in RUNNING or row.since is None:
        return 0
    since = row.since if row.since.tzinfo else row.since.replace(tzinfo=UTC)
    return _gauge(int((now - since).total_seconds() * 100))


def snapshot(rows: list[VmRow], *, host: str, facts: dict[str, Any],
             now: datetime | None = None) -> list[tuple[tuple[int, ...], tuple[str, Any]]]:
    """Every instance the agent answers, sorted by OID: ``(oid, (smi_type, value))`` with
    types ``str`` (OCTET STRING), ``gauge``, ``unsigned``, ``integer``, ``ticks``."""
    now = now or datetime.now(UTC)
    running = sum(row.state in RUNNING for row in rows)
    stopped = sum(row.state == "stopped" for row in rows)
    host_values: dict[str, tuple[str, Any]] = {
        "bhypeHostVersion": ("str", facts["version"]),
        "bhypeHostName": ("str", host),
        "bhypeHostVmsTotal": ("gauge", len(rows)),
        "bhypeHostVmsRunning": ("gauge", running),
        "bhypeHostVmsStopped": ("gauge", stopped),
        "bhypeHostVmsOther": ("gauge", len(rows) - running - stopped),
        "bhypeHostCpus": ("gauge", _gauge(facts["cpus"])),
        "bhypeHostMemory": ("gauge", _gauge(facts["memory"] // MIB)),
    }
    values = [((*oids.HOST_OBJECTS[name], 0), value) for name, value in host_values.items()]
    for row in rows:
        if not 1 <= row.id <= GAUGE_MAX:
            continue  # not indexable (bhypeVmIndex is 1..4294967295)
        columns = {
            "bhypeVmName": ("str", row.name),
            "bhypeVmUuid": ("str", row.uuid),
            "bhypeVmState": ("integer", oids.VM_STATE_VALUES.get(row.state, oids.VM_STATE_VALUES["unknown"])),
            "bhypeVmOwner": ("str", row.owner),
            "bhypeVmVcpus": ("gauge", _gauge(row.vcpus)),
            "bhypeVmMemory": ("gauge", _gauge(row.memory // MIB)),
            "bhypeVmUptime": ("ticks", uptime_ticks(row, now)),
        }
        values.extend(((*oids.VM_ENTRY, oids.VM_COLUMNS[name], row.id), value) for name, value in columns.items())
    return sorted(values)
