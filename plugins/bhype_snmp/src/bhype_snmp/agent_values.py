"""What the agent serves: BHYPE-MIB's host scalars and bhypeVmTable, built from the VM records
(``list_vms``), facts this process already has and monitoring's live metrics
(``read_live_metrics``), as a sorted snapshot (pure; no host command)."""

from __future__ import annotations

import os
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from bhype_core.plugin_api import parse_size
from bhype_snmp import oids
from bhype_snmp.notification import date_and_time

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


def fresh_live(live: dict[str, Any] | None, now: datetime) -> dict[str, Any]:
    """The live metrics snapshot if it is recent (sampled within three intervals, at least 30 s:
    a sampler that stopped shows as no data, not as old data), else ``{}``."""
    if not isinstance(live, dict):
        return {}
    try:
        age = now.timestamp() - float(live["at"])
        limit = max(30.0, 3 * float(live.get("interval") or 10))
    except (KeyError, TypeError, ValueError):
        return {}
    return live if -limit <= age <= limit else {}


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def pool_values(live: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    """bhypeHostPoolSize/Free (MiB, all pools together) and bhypeHostPoolCapacity (the fullest
    pool's CAP); nothing when the snapshot has no pool with a size."""
    pools = [pool for pool in live.get("pools") or []
             if isinstance(pool, dict) and _number(pool.get("size")) is not None]
    if not pools:
        return {}
    caps = [cap for pool in pools if (cap := _number(pool.get("cap"))) is not None]
    values = {"bhypeHostPoolSize": ("gauge", _gauge(int(sum(_number(p["size"]) or 0 for p in pools)) // MIB)),
              "bhypeHostPoolFree": ("gauge", _gauge(int(sum(_number(p.get("free")) or 0 for p in pools)) // MIB))}
    if caps:
        values["bhypeHostPoolCapacity"] = ("gauge", max(0, min(100, round(max(caps)))))
    return values


def vm_live_values(metrics: dict[str, Any]) -> dict[str, tuple[str, Any]]:
    """bhypeVmCpuPercent (rounded) and bhypeVmMemoryUsed (MiB) from one VM's live metrics;
    a column without a measured value is left out (served as noSuchInstance), never 0."""
    values = {}
    if (cpu := _number(metrics.get("cpu_percent"))) is not None:
        values["bhypeVmCpuPercent"] = ("gauge", _gauge(round(cpu)))
    if (rss := _number(metrics.get("mem_rss"))) is not None:
        values["bhypeVmMemoryUsed"] = ("gauge", _gauge(int(rss) // MIB))
    return values


def uptime_ticks(row: VmRow, now: datetime, measured: Any = None) -> int:
    """Hundredths of a second the VM has run: monitoring's measured uptime (seconds since its
    hypervisor started) when there is one, else since its state last changed; 0 when not running."""
    if row.state not in RUNNING:
        return 0
    if (seconds := _number(measured)) is not None:
        return _gauge(int(seconds * 100))
    if row.since is None:
        return 0
    since = row.since if row.since.tzinfo else row.since.replace(tzinfo=UTC)
    return _gauge(int((now - since).total_seconds() * 100))


def last_backup_value(uuid: str, backups: dict[str, datetime] | None) -> dict[str, tuple[str, Any]]:
    """bhypeVmLastBackup: the newest good backup's time (DateAndTime, UTC), ``NEVER``
    ('0000000000000000'H) for a VM without one; absent when the backup plugins could not be
    asked (``backups`` ``None``: unknown is not "never")."""
    if backups is None:
        return {}
    when = backups.get(uuid)
    return {"bhypeVmLastBackup": ("octets", date_and_time(when) if when is not None else oids.NEVER)}


def snapshot(rows: list[VmRow], *, host: str, facts: dict[str, Any], now: datetime | None = None,
             live: dict[str, Any] | None = None,
             backups: dict[str, datetime] | None = None) -> list[tuple[tuple[int, ...], tuple[str, Any]]]:
    """Every instance the agent answers, sorted by OID: ``(oid, (smi_type, value))`` with
    types ``str`` (text as OCTET STRING), ``octets`` (bytes), ``gauge``, ``unsigned``,
    ``integer``, ``ticks``. ``live`` is monitoring's live metrics snapshot
    (``read_live_metrics``); ignored when stale. ``backups`` is ``last_backup_times``' answer
    (``None``: not known, the column is left out)."""
    now = now or datetime.now(UTC)
    current = fresh_live(live, now)
    live_vms: dict[str, Any] = current["vms"] if isinstance(current.get("vms"), dict) else {}
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
        **pool_values(current),
    }
    values = [((*oids.HOST_OBJECTS[name], 0), value) for name, value in host_values.items()]
    for row in rows:
        if not 1 <= row.id <= GAUGE_MAX:
            continue  # not indexable (bhypeVmIndex is 1..4294967295)
        entry = live_vms.get(row.uuid)
        metrics: dict[str, Any] = {}
        if isinstance(entry, dict) and isinstance(entry.get("metrics"), dict):
            metrics = entry["metrics"]
        columns = {
            "bhypeVmName": ("str", row.name),
            "bhypeVmUuid": ("str", row.uuid),
            "bhypeVmState": ("integer", oids.VM_STATE_VALUES.get(row.state, oids.VM_STATE_VALUES["unknown"])),
            "bhypeVmOwner": ("str", row.owner),
            "bhypeVmVcpus": ("gauge", _gauge(row.vcpus)),
            "bhypeVmMemory": ("gauge", _gauge(row.memory // MIB)),
            "bhypeVmUptime": ("ticks", uptime_ticks(row, now, metrics.get("uptime"))),
            **vm_live_values(metrics),
            **last_backup_value(row.uuid, backups),
        }
        values.extend(((*oids.VM_ENTRY, oids.VM_COLUMNS[name], row.id), value) for name, value in columns.items())
    return sorted(values)
