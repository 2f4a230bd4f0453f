"""Metric history in the database with downsampling tiers (RRD-like, in ``monitor_sample``).

Tier 0 keeps every sample (one per ``sample_interval_seconds``) for a day; tier 1 one row per
minute for a week, tier 2 per 10 minutes for a month, tier 3 per hour for
``history_retention_days`` (a year by default). A higher tier's row aggregates the lower
tier's rows of its bucket as ``[min, avg, max]`` (avg weighted by the raw samples ``n``), made
when the bucket is over; rows older than their tier keeps are deleted. So a series never holds
more than ``sum(keep / step)`` rows (``docs/monitoring.md`` gives the bytes). The roll-up
position is found again from the table after a restart: nothing lives only in memory.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass
from typing import Any

import orjson
from sqlalchemy import delete, func, insert, select

from bhype_monitor.models import MonitorSample

DAY = 86400
TABLE = MonitorSample.__table__  # type: ignore[attr-defined]
# A series answer has at most about this many points (the step grows instead, and the coarsest
# tier that fits is read: 30 days come from the hourly tier, 720 rows).
MAX_POINTS = 720


@dataclass(frozen=True)
class Tier:
    """One resolution: rows ``step`` seconds apart, kept ``keep`` seconds."""

    step: int
    keep: int


def tiers(sample_interval: int, retention_days: int) -> list[Tier]:
    """The tiers for these settings; none keeps longer than ``retention_days``."""
    longest = retention_days * DAY
    wanted = [Tier(sample_interval, DAY), Tier(60, 7 * DAY), Tier(600, 31 * DAY), Tier(3600, longest)]
    return [Tier(t.step, min(t.keep, longest)) for t in wanted]


def rows_per_series(levels: list[Tier]) -> int:
    """The most rows one series holds once every tier is full."""
    return sum(math.ceil(t.keep / t.step) for t in levels)


def _dump(data: dict[str, Any]) -> str:
    return orjson.dumps(data).decode()


def _round(value: float) -> float | int:
    return int(value) if float(value).is_integer() else round(value, 3)


def aggregate(rows: Iterable[tuple[int, str]], keep: Collection[str] | None = None,
              exact: bool = True) -> tuple[int, dict[str, list[float | int]]]:
    """Combine ``(n, data)`` rows of any tier into ``(n, {metric: [min, avg, max]})`` (avg
    weighted by ``n``); only the metrics in ``keep`` when given. ``exact=False`` rounds only the
    average (what a read needs; stored values are rounded already)."""
    total = 0
    acc: dict[str, list[Any]] = {}
    for n, data in rows:
        total += n
        for metric, value in orjson.loads(data).items():
            if keep is not None and metric not in keep:
                continue
            if value.__class__ is list:
                lo, avg, hi = value
            else:
                lo = avg = hi = value
            if lo is None:
                continue
            found = acc.get(metric)
            if found is None:
                acc[metric] = [lo, avg * n, hi, n]
                continue
            if lo < found[0]:
                found[0] = lo
            if hi > found[2]:
                found[2] = hi
            found[1] += avg * n
            found[3] += n
    if exact:
        return total, {m: [_round(a[0]), _round(a[1] / a[3]), _round(a[2])] for m, a in acc.items()}
    return total, {m: [a[0], round(a[1] / a[3], 3), a[2]] for m, a in acc.items()}


class History:
    """Writes, rolls up, prunes, deletes and reads the history of every series."""

    def __init__(self, engine: Any, levels: list[Tier], clock: Callable[[], float]) -> None:
        self.engine = engine
        self.levels = levels
        self.clock = clock
        self._next: dict[int, int] = {}  # per tier > 0: the first bucket not rolled up yet

    # -- writing --------------------------------------------------------------------------

    def record(self, samples: dict[str, dict[str, Any]], at: float | None = None) -> int:
        """Store one raw sample per series (``{series: {metric: number}}``) in tier 0 at the
        current interval's bucket, then roll up and prune what came due. Returns the bucket."""
        now = self.clock() if at is None else at
        step = self.levels[0].step
        ts = int(now // step * step)
        rows = [{"series": s, "tier": 0, "ts": ts, "n": 1,
                 "data": _dump({k: _round(v) for k, v in m.items() if isinstance(v, int | float)})}
                for s, m in samples.items()]
        with self.engine.begin() as connection:
            if rows:  # a restarted worker may write the same bucket again: last write wins
                connection.execute(delete(TABLE).where(TABLE.c.tier == 0, TABLE.c.ts == ts,
                                                       TABLE.c.series.in_(list(samples))))
                connection.execute(insert(TABLE), rows)
            rolled = self._roll(connection, now)
            if rolled:
                self._prune(connection, now)
        return ts

    def _start(self, connection: Any, tier: int, upto: int) -> int:
        step = self.levels[tier].step
        last = connection.execute(select(func.max(TABLE.c.ts)).where(TABLE.c.tier == tier)).scalar()
        if last is not None:
            return int(last) + step
        first = connection.execute(select(func.min(TABLE.c.ts)).where(TABLE.c.tier == tier - 1)).scalar()
        return int(first) // step * step if first is not None else upto

    def _roll(self, connection: Any, now: float) -> bool:
        """Aggregate every finished bucket of each tier from the tier below; True when tier 1
        advanced (then pruning is due: at most once a minute)."""
        advanced = False
        for tier in range(1, len(self.levels)):
            step = self.levels[tier].step
            upto = int(now // step * step)
            start = self._next.get(tier)
            if start is None:
                start = self._start(connection, tier, upto)
            if start >= upto:
                self._next[tier] = start
                continue
            found = connection.execute(
                select(TABLE.c.series, TABLE.c.ts, TABLE.c.n, TABLE.c.data)
                .where(TABLE.c.tier == tier - 1, TABLE.c.ts >= start, TABLE.c.ts < upto)
            ).all()
            buckets: dict[tuple[str, int], list[tuple[int, str]]] = defaultdict(list)
            for series, ts, n, data in found:
                buckets[(series, int(ts) // step * step)].append((n, data))
            rows = []
            for (series, ts), parts in buckets.items():
                n, data = aggregate(parts)
                rows.append({"series": series, "tier": tier, "ts": ts, "n": n, "data": _dump(data)})
            if rows:
                connection.execute(delete(TABLE).where(TABLE.c.tier == tier, TABLE.c.ts >= start,
                                                       TABLE.c.ts < upto))
                connection.execute(insert(TABLE), rows)
            self._next[tier] = upto
            advanced = advanced or tier == 1
        return advanced

    def _prune(self, connection: Any, now: float) -> None:
        for tier, level in enumerate(self.levels):
            connection.execute(delete(TABLE).where(TABLE.c.tier == tier, TABLE.c.ts < now - level.keep))

    def forget(self, series: str) -> int:
        """Delete every row of ``series`` (a destroyed VM); how many went."""
        with self.engine.begin() as connection:
            return connection.execute(delete(TABLE).where(TABLE.c.series == series)).rowcount or 0

    # -- reading --------------------------------------------------------------------------

    def pick_tier(self, start: float, step: int | None) -> int:
        """The tier to read from ``start`` on: among those still holding ``start``, the
        coarsest not coarser than ``step``, or the finest without a ``step``."""
        now = self.clock()
        holding = [i for i, level in enumerate(self.levels) if now - level.keep <= start] or [len(self.levels) - 1]
        if step is None:
            return holding[0]
        fitting = [i for i in holding if self.levels[i].step <= step]
        return fitting[-1] if fitting else holding[0]

    def series(self, series: str, start: float, end: float, step: int | None = None,
               metrics: Iterable[str] | None = None) -> dict[str, Any]:
        """The values of ``series`` between ``start`` and ``end`` (epoch seconds) every ``step``
        seconds (default: the tier's, grown so about :data:`MAX_POINTS` come back):
        ``{"t": [bucket starts], "metrics": {name: {"min": [...], "avg": [...], "max": [...]}}}``,
        ``None`` where a bucket has no sample."""
        if end < start:
            raise ValueError("'to' is before 'from'")
        spread = (end - start) / MAX_POINTS
        tier = self.pick_tier(start, max(step or 0, int(spread)) or None)
        base = self.levels[tier].step
        wanted = max(base, step or base, math.ceil(spread / base) * base)
        wanted = math.ceil(wanted / base) * base
        with self.engine.connect() as connection:
            found = connection.execute(
                select(TABLE.c.ts, TABLE.c.n, TABLE.c.data)
                .where(TABLE.c.series == series, TABLE.c.tier == tier, TABLE.c.ts >= start // base * base,
                       TABLE.c.ts <= end).order_by(TABLE.c.ts)
            ).all()
        first = int(start // wanted * wanted)
        times = list(range(first, int(end) + 1, wanted))
        groups: dict[int, list[tuple[int, str]]] = defaultdict(list)
        for ts, n, data in found:
            groups[int(ts) // wanted * wanted].append((n, data))
        keep = set(metrics) if metrics else None
        out: dict[str, dict[str, list[Any]]] = {}
        for index, ts in enumerate(times):
            if ts not in groups:
                continue
            _, values = aggregate(groups[ts], keep, exact=False)
            for metric, (lo, avg, hi) in values.items():
                if metric not in out:
                    out[metric] = {"min": [None] * len(times), "avg": [None] * len(times), "max": [None] * len(times)}
                out[metric]["min"][index], out[metric]["avg"][index], out[metric]["max"][index] = lo, avg, hi
        return {"series": series, "tier": tier, "step": wanted, "from": first, "to": int(end),
                "t": times, "metrics": out}

    def latest(self, prefix: str = "") -> dict[str, tuple[int, dict[str, Any]]]:
        """The newest raw sample of every series (whose name starts with ``prefix``)."""
        with self.engine.connect() as connection:
            newest = connection.execute(select(func.max(TABLE.c.ts)).where(TABLE.c.tier == 0)).scalar()
            if newest is None:
                return {}
            rows = connection.execute(
                select(TABLE.c.series, TABLE.c.ts, TABLE.c.data)
                .where(TABLE.c.tier == 0, TABLE.c.ts == newest, TABLE.c.series.startswith(prefix))
            ).all()
        return {series: (int(ts), orjson.loads(data)) for series, ts, data in rows}

    def counts(self) -> dict[int, int]:
        """Rows per tier (for the docs' sizes and the benchmark)."""
        with self.engine.connect() as connection:
            rows = connection.execute(select(TABLE.c.tier, func.count()).group_by(TABLE.c.tier)).all()
        return {int(tier): int(count) for tier, count in rows}
