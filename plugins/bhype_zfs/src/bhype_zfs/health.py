"""Pool health and space: a periodic check that raises ``bhype_notify`` events when either changes.

Health is ``zpool list``'s ``health`` column (zpoolprops(7): ONLINE, DEGRADED, FAULTED, OFFLINE,
REMOVED, UNAVAIL, SUSPENDED); space is its ``cap`` (percent allocated) against
``zfs.capacity_warning``/``capacity_critical``. The last reported level per pool is stored
(``zfs_health_state``), so a degraded pool is reported once when it degrades and once when it
recovers, not on every check.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlmodel import select

from bhype_core.plugin_api import Event, session
from bhype_zfs import pool_argv
from bhype_zfs.models import ZfsHealthState
from bhype_zfs.parse import PoolInfo, parse_zpool_list
from bhype_zfs.tool import ZfsHost, zfs_host, zfs_settings

HEALTH_SEVERITY = {"ONLINE": "info", "DEGRADED": "error"}  # anything else: critical
CAPACITY_SEVERITY = {"ok": "info", "warning": "warning", "critical": "critical"}


def capacity_level(capacity: int, warning: int, critical: int) -> str:
    """``ok``, ``warning`` or ``critical`` for a pool ``capacity`` percent."""
    if capacity >= critical:
        return "critical"
    if capacity >= warning:
        return "warning"
    return "ok"


def pool_events(pool: PoolInfo, previous: tuple[str, str] | None, warning: int, critical: int) -> list[Event]:
    """The events a pool's state calls for, given what was last reported (pure).

    ``previous`` is ``(health, capacity level)`` or ``None`` for a pool never seen: a healthy
    new pool raises nothing; anything else that differs from ``previous`` raises one event.
    """
    events = []
    level = capacity_level(pool.capacity, warning, critical)
    old_health, old_level = previous or ("ONLINE", "ok")
    subject = f"pool:{pool.name}"
    data = {"pool": pool.name, "health": pool.health, "capacity": pool.capacity, "free": pool.free}
    if pool.health != old_health:
        severity = HEALTH_SEVERITY.get(pool.health, "critical")
        message = (f"pool {pool.name} is {pool.health} again" if pool.health == "ONLINE"
                   else f"pool {pool.name} is {pool.health} (was {old_health}): check `zpool status -x`")
        events.append(Event("zfs.pool_health", message, severity=severity, subject=subject, data=data))
    if level != old_level:
        message = (f"pool {pool.name} is {pool.capacity}% full" + (
            "" if level == "ok" else f" ({level}: warning at {warning}%, critical at {critical}%)"))
        events.append(Event("zfs.pool_capacity", message, severity=CAPACITY_SEVERITY[level], subject=subject,
                            data={**data, "level": level}))
    return events


def check_health(runtime: Any, host: ZfsHost | None = None) -> list[Event]:
    """Check every imported pool, notify what changed, remember it; returns the events raised."""
    settings = zfs_settings(runtime)
    host = host or zfs_host(runtime, settings.command_timeout)
    pools = parse_zpool_list(host.text(pool_argv.list_pools(host.tools)))
    raised: list[Event] = []
    with session(runtime, write=True) as db:
        known = {row.pool: row for row in db.exec(select(ZfsHealthState)).all()}
        for pool in pools:
            row = known.get(pool.name)
            previous = (row.health, row.capacity_level) if row is not None else None
            events = pool_events(pool, previous, settings.capacity_warning, settings.capacity_critical)
            level = capacity_level(pool.capacity, settings.capacity_warning, settings.capacity_critical)
            if row is None:
                row = ZfsHealthState(pool=pool.name, health=pool.health, capacity_level=level)
            row.health, row.capacity_level, row.updated = pool.health, level, datetime.now(UTC)
            row.capacity, row.size, row.allocated, row.free = pool.capacity, pool.size, pool.allocated, pool.free
            db.add(row)
            raised += events
    for event in raised:
        runtime.notify(event)
    return raised


def recorded(runtime: Any) -> list[dict[str, Any]]:
    """Every pool as the last check saw it (read from the database: no host command)."""
    with session(runtime) as db:
        rows = db.exec(select(ZfsHealthState).order_by(ZfsHealthState.pool)).all()
    return [{"pool": r.pool, "health": r.health, "capacity": r.capacity, "capacity_level": r.capacity_level,
             "size": r.size, "allocated": r.allocated, "free": r.free, "checked": r.updated.isoformat()}
            for r in rows]


def health_task(context: Any) -> list[dict[str, Any]]:
    """``zfs.health`` (task kind and periodic job): check pools and notify changes (nothing to
    do until ``zfs.pool`` is set: a host without ZFS storage must not fail this job every five
    minutes)."""
    if not zfs_settings(context.runtime).pool:
        return []
    return [event.to_dict() for event in check_health(context.runtime)]
