"""The live metrics seam: what one process publishes another reads (fact store on a shared
database; real Redis with an expiry), through ``plugin_api`` as plugins use it."""

from __future__ import annotations

from pathlib import Path

import pytest
import redis

from bhype_core.builtins import models as core_models
from bhype_core.db.migrate import upgrade
from bhype_core.live_metrics import fact_key, redis_key
from bhype_core.plugin_api import publish_live_metrics, read_live_metrics
from bhype_core.plugins import make_plugin_manager
from bhype_core.runtime import Runtime, build_runtime
from bhype_core.testing import make_settings
from bhype_core.testing.queue import redis_prefix, redis_url  # noqa: F401  (fixtures)

SNAPSHOT = {"at": 1765100000.0, "interval": 10, "host": {"metrics": {"cpu_percent": 12.5}},
            "pools": [{"name": "tank", "size": 1000, "alloc": 250, "free": 750, "cap": 25, "health": "ONLINE"}],
            "vms": {"0b6f6c2e-1c1a-4c39-9a51-8e0b1d2c3f40": {"name": "web1", "state": "running",
                                                             "metrics": {"cpu_percent": 3.5, "mem_rss": 123}}}}


def build(tmp_path: Path, **core: str) -> Runtime:
    pm = make_plugin_manager(load_entrypoints=False, plugins=[("core_models", core_models)])
    url = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
    runtime = build_runtime(make_settings(tmp_path / "data", core={"database_url": url, **core}), pm)
    upgrade(runtime)
    return runtime


def test_published_in_the_fact_store_and_read_by_another_process(tmp_path: Path) -> None:
    worker, api = build(tmp_path), build(tmp_path)
    assert read_live_metrics(api) is None  # before the first tick
    publish_live_metrics(worker, SNAPSHOT, ttl=30)
    assert read_live_metrics(api) == SNAPSHOT == api.facts.get(fact_key(api)).value
    newer = {**SNAPSHOT, "at": SNAPSHOT["at"] + 10}
    publish_live_metrics(worker, newer, ttl=30)
    assert read_live_metrics(api) == newer  # replaced, not accumulated
    for runtime in (worker, api):
        runtime.engine.dispose()


@pytest.mark.redis
def test_published_in_redis_expires_and_skips_the_database(tmp_path: Path, redis_url, redis_prefix) -> None:  # noqa: F811
    key = f"{redis_prefix}:live"
    worker, api = (build(tmp_path, redis_url=redis_url, live_metrics_key=key) for _ in range(2))
    assert read_live_metrics(api) is None
    publish_live_metrics(worker, SNAPSHOT, ttl=45)
    assert read_live_metrics(api) == SNAPSHOT
    assert api.facts.get(fact_key(api)) is None
    assert 30 < redis.Redis.from_url(redis_url).ttl(redis_key(api)) <= 45  # a dead sampler shows as no data
    for runtime in (worker, api):
        runtime.engine.dispose()


def test_each_group_host_keeps_its_own_snapshot(tmp_path: Path) -> None:
    """Issue 22: hosts sharing the database publish side by side; a reader gets its own host's
    snapshot, or another host's by name."""
    def host(name: str) -> Runtime:
        pm = make_plugin_manager(load_entrypoints=False, plugins=[("core_models", core_models)])
        url = f"sqlite:///{tmp_path / 'shared.sqlite3'}"
        runtime = build_runtime(make_settings(tmp_path / name, core={"database_url": url}, host={"name": name}), pm)
        upgrade(runtime)
        return runtime

    h1, h2 = host("h1"), host("h2")
    other = {**SNAPSHOT, "at": SNAPSHOT["at"] + 5, "vms": {}}
    publish_live_metrics(h1, SNAPSHOT, ttl=30)
    publish_live_metrics(h2, other, ttl=30)
    assert read_live_metrics(h1) == SNAPSHOT and read_live_metrics(h2) == other  # neither overwrote the other
    assert read_live_metrics(h1, host="h2") == other and read_live_metrics(h2, host="h1") == SNAPSHOT
    assert read_live_metrics(h1, host="h3") is None
    for runtime in (h1, h2):
        runtime.engine.dispose()
