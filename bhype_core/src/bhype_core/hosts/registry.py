"""The group's host registry: each worker registers its host, heartbeats, and everyone reads states.

Heartbeats go through Redis when ``core.redis_url`` is set (one key per host, refreshed every
``host.heartbeat_interval``), else into ``core_host.last_seen`` (the embedded default). A host
whose last heartbeat is older than ``host.unreachable_after`` is ``unreachable``; its VMs show
state ``unknown``. Nothing is restarted elsewhere: there is no shared storage to fence with.
"""

from __future__ import annotations

import logging
import sys
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col, select

from bhype_core.db.models import utcnow
from bhype_core.hosts import capacity
from bhype_core.hosts.models import Host
from bhype_core.hosts.settings import host_settings, local_host_name

log = logging.getLogger("bhype.hosts")

REACHABLE, UNREACHABLE = "reachable", "unreachable"
KEY = "{}:host:{}:heartbeat"  # under queue.name: one group's keys together, test prefixes apart


def heartbeat_key(runtime: Any, name: str) -> str:
    """The Redis key holding host ``name``'s last heartbeat."""
    return KEY.format(runtime.settings.queue.name, name)


@dataclass(frozen=True)
class HostState:
    """A registered host and whether its heartbeat is fresh (``age`` in seconds, ``None`` = never)."""

    host: Host
    state: str
    age: float | None

    def to_dict(self) -> dict[str, Any]:
        """The JSON of ``GET /api/v1/hosts`` and ``bhype hosts --json``."""
        row = self.host
        return {"name": row.name, "address": row.address, "platform": row.platform, "hypervisor": row.hypervisor,
                "state": self.state, "heartbeat_age": self.age, "capacity": row.capacity, "versions": row.versions,
                "task_kinds": row.task_kinds, "registered": row.registered.isoformat()}


def _redis(runtime: Any) -> Any | None:
    """A Redis client on ``core.redis_url`` (built once per runtime), or ``None`` without Redis."""
    url = runtime.settings.core.redis_url
    if not url:
        return None
    client = runtime.extras.get("host.redis")
    if client is None:
        import redis

        from bhype_core.tasks.transport import redis_pool

        client = runtime.extras["host.redis"] = redis.Redis(connection_pool=redis_pool(url))
    return client


def register(runtime: Any) -> Host:
    """Write this host's row (identity, capacity, versions, task kinds) and a first heartbeat;
    the first host of a group adopts the rows of the single-host install (``host = ''``)."""
    name = local_host_name(runtime)
    settings = host_settings(runtime)
    platform = "freebsd" if sys.platform.startswith("freebsd") else sys.platform
    from bhype_core.drivers.select import DEFAULT_DRIVERS

    with Session(runtime.engine) as session:
        if session.exec(select(Host).limit(1)).first() is None:
            adopt_unowned(runtime.engine, name)  # the first host: the single-host rows are its own
    driver = runtime.settings.core.driver if runtime.settings.core.driver != "auto" else None
    values = {"address": settings.address or name, "platform": platform,
              "hypervisor": driver or DEFAULT_DRIVERS.get(platform, ""),
              "capacity": capacity.measure(runtime, name), "versions": capacity.versions(runtime),
              "task_kinds": sorted(runtime.registry.tasks.names()), "last_seen": utcnow()}
    with Session(runtime.engine, expire_on_commit=False) as session:
        row = session.get(Host, name)
        if row is None:
            row = Host(name=name, **values)
        else:
            for key, value in values.items():
                setattr(row, key, value)
        session.add(row)
        session.commit()
    beat(runtime)
    log.info("host %s registered (%s, %s)", name, row.platform, row.hypervisor)
    return row


def adopt_unowned(engine: Any, name: str) -> None:
    """Give the rows of a single-host install (``host = ''``: VMs, switches) to host ``name``."""
    from bhype_core.network.models import Switch
    from bhype_core.vm.models import VM

    with engine.begin() as connection:
        for model in (VM, Switch):
            connection.execute(update(model).where(col(model.host) == "").values(host=name))


def beat(runtime: Any) -> None:
    """One heartbeat of this host: a Redis key living ``unreachable_after`` seconds, else
    ``core_host.last_seen``; the free memory and datastore space are refreshed in the row."""
    name = local_host_name(runtime)
    now = utcnow()
    client = _redis(runtime)
    if client is not None:
        ttl = max(1, int(host_settings(runtime).unreachable_after * 4))
        client.set(heartbeat_key(runtime, name), now.isoformat(), ex=ttl)
    with runtime.engine.begin() as connection:
        values: dict[str, Any] = {"capacity": capacity.measure(runtime, name)}
        if client is None:
            values["last_seen"] = now
        connection.execute(update(Host).where(col(Host.name) == name).values(**values))


def last_heartbeats(runtime: Any, names: list[str], rows: dict[str, Host]) -> dict[str, datetime | None]:
    """When each host last heartbeated (Redis when configured, else the row)."""
    client = _redis(runtime)
    if client is None:
        return {name: rows[name].last_seen for name in names}
    values = client.mget([heartbeat_key(runtime, name) for name in names]) if names else []
    return {name: (datetime.fromisoformat(value.decode()) if value else None)
            for name, value in zip(names, values, strict=True)}


def host_states(runtime: Any) -> list[HostState]:
    """Every registered host with its state, by name."""
    with Session(runtime.engine, expire_on_commit=False) as session:
        rows = {row.name: row for row in session.exec(select(Host).order_by(col(Host.name)))}
    limit = host_settings(runtime).unreachable_after
    now = datetime.now(UTC)
    seen = last_heartbeats(runtime, list(rows), rows)
    states = []
    for name, row in rows.items():
        when = seen.get(name)
        if when is not None and when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        age = (now - when).total_seconds() if when is not None else None
        states.append(HostState(row, REACHABLE if age is not None and age <= limit else UNREACHABLE, age))
    return states


def unreachable_hosts(runtime: Any) -> set[str]:
    """Names of registered hosts whose heartbeat is stale."""
    return {state.host.name for state in host_states(runtime) if state.state == UNREACHABLE}
