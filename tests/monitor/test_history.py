"""History with a frozen clock: tiers, roll-ups, pruning over a simulated year, a destroyed VM's
rows gone, and a new History (a restarted worker) continuing where the last one stopped."""

from __future__ import annotations

import pytest

from bhype_monitor.history import DAY, History, Tier, aggregate, rows_per_series, tiers
from bhype_monitor.sampler import make_history

START = 1_700_000_000 // 3600 * 3600  # a whole hour


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def history(monitor_db_runtime):
    runtime = monitor_db_runtime(sample_interval_seconds=10, history_retention_days=365)
    clock = Clock(START)

    def build() -> History:
        made = make_history(runtime, clock)
        made.clock = clock
        return made

    return build, clock


def test_tiers_and_size_bound() -> None:
    levels = tiers(10, 365)
    assert levels == [Tier(10, DAY), Tier(60, 7 * DAY), Tier(600, 31 * DAY), Tier(3600, 365 * DAY)]
    assert rows_per_series(levels) == 8640 + 10080 + 4464 + 8760
    assert tiers(10, 3)[-1] == Tier(3600, 3 * DAY) and tiers(10, 3)[2] == Tier(600, 3 * DAY)


def test_aggregate_weights_by_samples() -> None:
    n, data = aggregate([(1, '{"cpu":10}'), (1, '{"cpu":30}'), (2, '{"cpu":[0,5,50]}')])
    assert n == 4 and data == {"cpu": [0, 12.5, 50]}  # (10 + 30 + 2*5) / 4


def test_raw_minute_and_hour_rollups(history) -> None:
    build, clock = history
    store = build()
    # Two hours at 10 s: cpu climbs 0..719, the VM's memory is constant.
    for i in range(720):
        clock.now = START + 10 * i
        store.record({"host": {"cpu": i}, "vm:a": {"mem": 100}})
    clock.now = START + 7200
    store.record({"host": {"cpu": 0}})
    minute = store.series("host", START, START + 119, step=60)
    assert minute["tier"] == 1 and minute["t"][:2] == [START, START + 60]
    assert minute["metrics"]["cpu"]["min"][:2] == [0, 6] and minute["metrics"]["cpu"]["max"][:2] == [5, 11]
    assert minute["metrics"]["cpu"]["avg"][:2] == [2.5, 8.5]
    hourly = store.series("host", START, START + 7199, step=3600)
    assert hourly["tier"] == 3 and hourly["metrics"]["cpu"]["min"] == [0, 360]
    assert hourly["metrics"]["cpu"]["max"] == [359, 719] and hourly["metrics"]["cpu"]["avg"] == [179.5, 539.5]
    raw = store.series("vm:a", START, START + 59)
    assert raw["tier"] == 0 and raw["step"] == 10 and raw["metrics"]["mem"]["avg"] == [100] * 6
    # A step no tier has is aggregated from the finer one: 5 minutes from the minute tier.
    five = store.series("host", START, START + 599, step=300)
    assert five["tier"] == 1 and five["metrics"]["cpu"]["min"] == [0, 30]


def test_a_restarted_writer_continues_the_rollups(history) -> None:
    build, clock = history
    first = build()
    for i in range(9):  # 0:00:00 .. 0:01:20
        clock.now = START + 10 * i
        first.record({"host": {"cpu": 1}})
    restarted = build()  # a new worker: nothing in memory, everything from the table
    for i in range(9, 18):
        clock.now = START + 10 * i
        restarted.record({"host": {"cpu": 3}})
    counts = restarted.counts()
    assert counts[0] == 18 and counts[1] == 2  # 0:00 and 0:01 rolled up, 0:02 still open
    minute = restarted.series("host", START, START + 119, step=60)
    assert minute["metrics"]["cpu"]["avg"] == [1, 2]  # 0:01 mixes both writers' samples


def test_a_year_keeps_each_tier_bounded(history) -> None:
    build, clock = history
    store = build()
    # A year of samples every 6 hours (a worker that samples rarely: the test stays quick) plus
    # the last two hours at 10 s: each tier ends up holding only what it keeps, and the oldest
    # hours are still there at hourly resolution.
    year = 365 * DAY
    for quarter in range(year // (6 * 3600)):
        clock.now = START + quarter * 6 * 3600
        store.record({"vm:a": {"cpu": quarter % 100}})
    end = START + year
    for i in range(720):
        clock.now = end + 10 * i
        store.record({"vm:a": {"cpu": 50}})
    clock.now = end + 7200
    store.record({"vm:a": {"cpu": 50}})
    counts = store.counts()
    assert counts[0] <= DAY // 10 + 1
    assert counts[1] <= 7 * DAY // 60 + 1 and counts[2] <= 31 * DAY // 600 + 1
    assert counts[3] <= 365 * 24 + 1
    oldest = store.series("vm:a", clock.now - 364 * DAY, clock.now - 363 * DAY, step=3600)
    assert oldest["tier"] == 3 and any(v is not None for v in oldest["metrics"]["cpu"]["avg"])
    gone = store.series("vm:a", clock.now - 400 * DAY, clock.now - 399 * DAY, step=3600)
    assert gone["metrics"] == {}
    # Nothing older than its tier keeps is left in any tier.
    for tier, level in enumerate(store.levels):
        first = store.series("vm:a", clock.now - level.keep - 7200, clock.now - level.keep - 1, step=level.step)
        assert first["tier"] != tier or first["metrics"] == {}
    held = sum(store.counts().values())
    assert held and store.forget("vm:a") == held
    assert store.counts() == {}


def test_bad_range(history) -> None:
    build, _ = history
    with pytest.raises(ValueError, match="before"):
        build().series("host", 10, 5)
