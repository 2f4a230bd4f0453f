"""The live snapshot (the newest values of the host and every VM): in Redis when
``core.redis_url`` is set (key ``monitor.redis_key``), else in the database's fact store, where
the API process reads it.

The worker also keeps it in its own memory (``runtime.extras``) for thresholds and ``/metrics``
in the same process; the snapshot is replaced each tick, never accumulated.
"""

from __future__ import annotations

import json
from typing import Any

FACT_KEY = "monitor.current"
EXTRAS_KEY = "monitor.current"


def _redis(runtime: Any) -> Any:
    client = runtime.extras.get("monitor.redis")
    if client is None:
        import redis

        client = runtime.extras.setdefault("monitor.redis", redis.Redis.from_url(runtime.settings.core.redis_url))
    return client


def put(runtime: Any, snapshot: dict[str, Any], interval: float) -> None:
    """Publish ``snapshot``; in Redis it expires after three missed ticks (a dead sampler
    shows as no data, not as stale data)."""
    runtime.extras[EXTRAS_KEY] = snapshot
    if runtime.settings.core.redis_url:
        key = runtime.settings.section("monitor").redis_key
        _redis(runtime).set(key, json.dumps(snapshot, separators=(",", ":")), ex=max(30, int(3 * interval)))
    else:
        runtime.facts.put(FACT_KEY, snapshot)


def get(runtime: Any) -> dict[str, Any] | None:
    """The newest snapshot, or ``None`` before the first tick (or after the sampler died, with Redis)."""
    if runtime.settings.core.redis_url:
        raw = _redis(runtime).get(runtime.settings.section("monitor").redis_key)
        return json.loads(raw) if raw else None
    fact = runtime.facts.get(FACT_KEY)
    return fact.value if fact else None
