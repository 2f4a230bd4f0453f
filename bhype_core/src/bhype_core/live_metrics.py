"""Live metrics: the newest snapshot of the host's and its active VMs' values, published by
the monitoring sampler each tick and read by whoever serves them (the API, ``/metrics``, SNMP).
The snapshot carries only the VMs the sampler reads (issue 15: a host with 10,000 VM records
and 200 running publishes 200 entries): a VM absent from it has no live values, and its state
is its record's (``list_vm_summaries``).

Where it lives: one snapshot per group host (issue 22: hosts sharing Redis and a database must
not overwrite each other's), in Redis under ``<core.live_metrics_key>:<host>`` when
``core.redis_url`` is set (it expires after ``ttl`` seconds, so a dead sampler shows as no data
rather than stale data), else in the database's fact store under ``<FACT_KEY>:<host>``
(readable by the API process and any other on the same database); the host is
``[host] name``. The publishing process also keeps it in ``runtime.extras`` (key
:data:`EXTRAS_KEY`) for readers in the same process. A snapshot replaces the previous one.

The snapshot's shape (a JSON object; every value may be missing while not yet measured)::

    {"at": 1765100000.0,            # when sampled, seconds since the epoch
     "interval": 10,                # seconds between samples
     "host": {"metrics": {"cpu_percent": 12.5, "load1": 0.4, "mem_total": bytes,
                          "mem_used": bytes, "mem_percent": 41.0, "uptime": seconds, ...}, ...},
     "pools": [{"name": "zroot", "size": bytes, "alloc": bytes, "free": bytes,
                "frag": percent, "cap": percent, "health": "ONLINE"}, ...],
     "vms": {"<uuid>": {"name": "web1", "owner": "alice", "state": "running",
                        "metrics": {"cpu_percent": 3.2,   # of one CPU
                                    "mem_rss": bytes, "uptime": seconds, ...}}, ...}}
"""

from __future__ import annotations

import json
from typing import Any

from bhype_core.hosts.settings import local_host_name

FACT_KEY = "monitor.current"
EXTRAS_KEY = "monitor.current"
_CLIENT_KEY = "core.live_metrics.redis"


def _redis(runtime: Any) -> Any:
    """One Redis client per runtime (kept in ``runtime.extras``)."""
    client = runtime.extras.get(_CLIENT_KEY)
    if client is None:
        import redis

        url = runtime.settings.core.redis_url
        client = runtime.extras.setdefault(_CLIENT_KEY, redis.Redis.from_url(url, socket_timeout=5,
                                                                             socket_connect_timeout=5))
    return client


def redis_key(runtime: Any, host: str | None = None) -> str:
    """The Redis key of ``host``'s snapshot (``None``: this process's host)."""
    return f"{runtime.settings.core.live_metrics_key}:{host or local_host_name(runtime)}"


def fact_key(runtime: Any, host: str | None = None) -> str:
    """The fact-store key of ``host``'s snapshot (``None``: this process's host)."""
    return f"{FACT_KEY}:{host or local_host_name(runtime)}"


def publish_live_metrics(runtime: Any, snapshot: dict[str, Any], ttl: float) -> None:
    """Replace this host's live snapshot with ``snapshot`` (the shape in this module's
    docstring); in Redis it expires after ``ttl`` seconds (at least 30)."""
    runtime.extras[EXTRAS_KEY] = snapshot
    if runtime.settings.core.redis_url:
        _redis(runtime).set(redis_key(runtime), json.dumps(snapshot, separators=(",", ":")), ex=max(30, int(ttl)))
    else:
        runtime.facts.put(fact_key(runtime), snapshot)


def read_live_metrics(runtime: Any, host: str | None = None) -> dict[str, Any] | None:
    """The newest snapshot of ``host`` (``None``: this process's host), or ``None`` before its
    first publish (or, with Redis, after its publisher stopped for longer than its ``ttl``)."""
    if runtime.settings.core.redis_url:
        raw = _redis(runtime).get(redis_key(runtime, host))
        return json.loads(raw) if raw else None
    fact = runtime.facts.get(fact_key(runtime, host))
    return fact.value if fact else None
