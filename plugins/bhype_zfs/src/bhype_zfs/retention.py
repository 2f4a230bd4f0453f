"""Sanoid-style retention, as pure functions: which periods are due, and which snapshots to prune.

Names: ``bhype_<UTC YYYYmmddTHHMMSSZ>_<period>`` (reference 6.8: bHype's own prefix, UTC, so
it never touches sanoid's ``autosnap_*`` or zfs-auto-snapshot's ``zfs-auto-snap*``). Periods
are sanoid's: frequently (every ``frequent_minutes``), hourly, daily, weekly (ISO weeks, from
Monday), monthly, yearly; buckets are in UTC.

Pruning rule (sanoid's, made stricter): for each period with count N, the N newest snapshots
of that period are always kept; an older one is destroyed only if it is also older than
N × the period's length. Never destroyed, whatever the counts: a held snapshot, the newest
snapshot carrying each backup marker (``org.bhype:backup-base``: the base an incremental
backup needs), and any snapshot whose name is not bHype's.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

PERIODS = ("frequently", "hourly", "daily", "weekly", "monthly", "yearly")
PREFIX = "bhype"
_NAME = re.compile(rf"^{PREFIX}_(\d{{8}}T\d{{6}}Z)_({'|'.join(PERIODS)})$")
LENGTHS = {
    "hourly": timedelta(hours=1),
    "daily": timedelta(days=1),
    "weekly": timedelta(days=7),
    "monthly": timedelta(days=31),
    "yearly": timedelta(days=365.25),
}


@dataclass(frozen=True)
class Policy:
    """How many snapshots of each period to keep (0: never take that period)."""

    frequently: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    frequent_minutes: int = 15

    def __post_init__(self) -> None:
        for period in PERIODS:
            if getattr(self, period) < 0:
                raise ValueError(f"{period} must not be negative")
        if not 1 <= self.frequent_minutes <= 60 or 60 % self.frequent_minutes:
            raise ValueError("frequent_minutes must divide an hour (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60)")

    def count(self, period: str) -> int:
        return int(getattr(self, period))

    def length(self, period: str) -> timedelta:
        """The period's length (sanoid: ``frequent_period`` minutes, 1 h, 24 h, 7 d, 31 d, 365.25 d)."""
        return timedelta(minutes=self.frequent_minutes) if period == "frequently" else LENGTHS[period]

    def active(self) -> list[str]:
        return [p for p in PERIODS if self.count(p) > 0]


def snapshot_name(period: str, when: datetime) -> str:
    """``bhype_20250131T140000Z_hourly`` for a scheduled snapshot taken at ``when``."""
    if period not in PERIODS:
        raise ValueError(f"unknown period {period!r}")
    return f"{PREFIX}_{when.astimezone(UTC).strftime('%Y%m%dT%H%M%SZ')}_{period}"


def parse_name(name: str) -> tuple[datetime, str] | None:
    """``(time, period)`` of a bHype scheduled snapshot name; ``None`` for any other name."""
    match = _NAME.match(name)
    if not match:
        return None
    return datetime.strptime(match.group(1), "%Y%m%dT%H%M%SZ").replace(tzinfo=UTC), match.group(2)


def bucket(period: str, when: datetime, frequent_minutes: int = 15) -> tuple[int, ...]:
    """Which slot of ``period`` the instant ``when`` falls in (UTC); comparable tuples."""
    t = when.astimezone(UTC)
    if period == "frequently":
        return (int(t.timestamp()) // (60 * frequent_minutes),)
    if period == "hourly":
        return (t.toordinal(), t.hour)
    if period == "daily":
        return (t.toordinal(),)
    if period == "weekly":
        year, week, _ = t.isocalendar()
        return (year, week)
    if period == "monthly":
        return (t.year, t.month)
    if period == "yearly":
        return (t.year,)
    raise ValueError(f"unknown period {period!r}")


def due_periods(policy: Policy, last_taken: Mapping[str, datetime | None], now: datetime) -> list[str]:
    """Periods whose snapshot is due at ``now``: the policy keeps some, and none was taken in
    the current slot. However many slots were missed (the worker was down), a period is due
    once: one snapshot catches up, not one per missed slot."""
    due = []
    for period in policy.active():
        last = last_taken.get(period)
        if last is None or bucket(period, now, policy.frequent_minutes) > bucket(period, last, policy.frequent_minutes):
            due.append(period)
    return due


@dataclass(frozen=True)
class Candidate:
    """A snapshot as pruning sees it (all members of a recursive snapshot as one).

    ``held``: any member carries a user hold. ``backup_base``: the value of the
    ``org.bhype:backup-base`` marker on it (which backup relies on it), or ``None``.
    """

    name: str
    created: datetime
    held: bool = False
    backup_base: str | None = None


def protected(snapshots: Iterable[Candidate]) -> set[str]:
    """Names pruning must never destroy: held snapshots and, per backup marker value, the
    newest snapshot carrying it."""
    keep = set()
    newest: dict[str, Candidate] = {}
    for snap in snapshots:
        if snap.held:
            keep.add(snap.name)
        if snap.backup_base is not None:
            current = newest.get(snap.backup_base)
            if current is None or (snap.created, snap.name) > (current.created, current.name):
                newest[snap.backup_base] = snap
    return keep | {snap.name for snap in newest.values()}


def prune(snapshots: Iterable[Candidate], policy: Policy, now: datetime) -> list[str]:
    """Names of the snapshots to destroy under ``policy`` at ``now``, oldest first.

    Only bHype's scheduled names are considered (others are never returned); see the module
    docstring for the rule and what is always kept.
    """
    items = list(snapshots)
    keep = protected(items)
    by_period: dict[str, list[tuple[datetime, Candidate]]] = {p: [] for p in PERIODS}
    for snap in items:
        parsed = parse_name(snap.name)
        if parsed is not None:
            by_period[parsed[1]].append((snap.created, snap))
    doomed: list[tuple[datetime, str]] = []
    for period, entries in by_period.items():
        count = policy.count(period)
        entries.sort(key=lambda e: (e[0], e[1].name), reverse=True)  # newest first
        horizon = now - policy.length(period) * count
        for created, snap in entries[count:]:
            if created < horizon and snap.name not in keep:
                doomed.append((created, snap.name))
    return [name for _, name in sorted(doomed)]
