"""The live snapshot in Redis (a real server: shared by API processes, expiring when the sampler
stops) and in the fact store; alarms on pools and host load with hysteresis, pure."""

from __future__ import annotations

import pytest
import redis

from bhype_core.live_metrics import fact_key, redis_key
from bhype_core.testing.queue import redis_prefix, redis_url  # noqa: F401  (fixtures)
from bhype_monitor import live
from bhype_monitor.settings import MonitorSettings
from bhype_monitor.thresholds import Alarms

SNAPSHOT = {"at": 1.0, "interval": 10, "host": {"metrics": {"cpu_percent": 3.0}, "cpus": 2}, "pools": [], "vms": {}}


@pytest.mark.redis
def test_live_snapshot_in_redis_expires(vm_monitor_runtime, redis_url, redis_prefix) -> None:  # noqa: F811
    runtime = vm_monitor_runtime(core={"redis_url": redis_url, "live_metrics_key": f"{redis_prefix}:monitor"})
    assert live.get(runtime) is None
    live.put(runtime, SNAPSHOT, interval=10)
    assert live.get(runtime) == SNAPSHOT and runtime.facts.get(fact_key(runtime)) is None
    ttl = redis.Redis.from_url(redis_url).ttl(redis_key(runtime))
    assert redis_key(runtime).startswith(f"{redis_prefix}:monitor:")  # one snapshot per group host
    assert 0 < ttl <= 30  # three missed samples at 10 s: a dead sampler shows as no data


def test_live_snapshot_in_the_fact_store(vm_monitor_runtime) -> None:
    runtime = vm_monitor_runtime()
    live.put(runtime, SNAPSHOT, interval=10)
    assert live.get(runtime) == SNAPSHOT == runtime.facts.get(fact_key(runtime)).value


def test_pool_and_load_alarms_with_hysteresis() -> None:
    settings = MonitorSettings(sustain=2, pool_capacity_high=85, pool_capacity_clear=80, load_high=2, load_clear=1.5)
    stored: list[dict] = []
    alarms = Alarms(lambda: None, stored.append)

    def update(cap: int, health: str, load: float) -> list[tuple[str, str | None]]:
        snapshot = {"host": {"metrics": {"load1": load}, "cpus": 2}, "vms": {},
                    "pools": [{"name": "tank", "cap": cap, "health": health}]}
        return [(event.kind, event.subject) for event in alarms.update(snapshot, [], settings)]

    assert update(90, "ONLINE", 1.0) == []  # once over: not yet (sustain 2)
    assert update(90, "ONLINE", 5.0) == [("monitor.threshold.raised", "pool:tank")]
    assert update(83, "ONLINE", 5.0) == [("monitor.threshold.raised", "host")]  # 83: between the levels, stays up
    assert update(79, "DEGRADED", 3.5) == [("monitor.threshold.cleared", "pool:tank"),
                                           ("monitor.pool.degraded", "pool:tank")]
    assert update(79, "DEGRADED", 3.1) == []  # load 1.55 per CPU: under the raise level, not the clear one
    assert update(79, "DEGRADED", 2.9) == [("monitor.threshold.cleared", "host")]  # 1.45 < 1.5
    assert update(79, "ONLINE", 2.9) == [("monitor.threshold.cleared", "pool:tank")]
    assert stored[-1] == {"raised": []}
    # A new Alarms over the stored state (a restarted worker) does not raise what is already up.
    alarms.raised = {"pool:tank.health"}
    again = Alarms(lambda: {"raised": ["pool:tank.health"]}, stored.append)
    snapshot = {"host": {"metrics": {}, "cpus": 1}, "vms": {},
                "pools": [{"name": "tank", "cap": 1, "health": "FAULTED"}]}
    assert again.update(snapshot, [], settings) == []
