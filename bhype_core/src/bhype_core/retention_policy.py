"""Sanoid-style retention, one implementation for every plugin: a policy, due periods, pruning.

The policy language (sanoid's, plus ``last``): keep the ``last`` N newest items, and per
period — frequently (every ``frequent_minutes``), hourly, daily, weekly (ISO weeks, from
Monday), monthly, yearly — a count. Buckets are in UTC. ZFS snapshot schedules
(``bhype_zfs``) label each snapshot with the one period it was taken for (its name says
which); backup points (``bhype_backup``) carry no label, so :func:`label_by_bucket` gives each
the periods it is the newest item of its bucket for, and the same :func:`prune` decides.

Pruning rule (sanoid's, made stricter): for each period with count N, the N newest items
labelled with that period are always kept; an older one is destroyed only if it is also older
than N × the period's length. The ``last`` N newest managed items are kept whatever their
labels. Never destroyed, whatever the counts: a held item, the newest item carrying each
backup marker (the base an incremental backup needs), and any item without labels
(``periods=None``: not managed by the policy, e.g. a snapshot someone else took).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta

PERIODS = ("frequently", "hourly", "daily", "weekly", "monthly", "yearly")
LENGTHS = {
    "hourly": timedelta(hours=1),
    "daily": timedelta(days=1),
    "weekly": timedelta(days=7),
    "monthly": timedelta(days=31),
    "yearly": timedelta(days=365.25),
}
_TERM = re.compile(r"^(last|frequently|hourly|daily|weekly|monthly|yearly|frequent_minutes)=(\d{1,6})$")


@dataclass(frozen=True)
class Policy:
    """How many items to keep: the ``last`` N newest, and N per period (0: none for that
    period; for schedules, never take it).

    :raises ValueError: a negative count, or ``frequent_minutes`` not dividing an hour (the
        message names the field).
    """

    frequently: int = 0
    hourly: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0
    yearly: int = 0
    frequent_minutes: int = 15
    last: int = 0

    def __post_init__(self) -> None:
        for name in (*PERIODS, "last"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must not be negative")
        if not 1 <= self.frequent_minutes <= 60 or 60 % self.frequent_minutes:
            raise ValueError("frequent_minutes must divide an hour (1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60)")

    def count(self, period: str) -> int:
        """The count kept for ``period``."""
        return int(getattr(self, period))

    def length(self, period: str) -> timedelta:
        """The period's length (sanoid: ``frequent_period`` minutes, 1 h, 24 h, 7 d, 31 d, 365.25 d)."""
        return timedelta(minutes=self.frequent_minutes) if period == "frequently" else LENGTHS[period]

    def active(self) -> list[str]:
        """The periods with a count above zero, shortest first."""
        return [p for p in PERIODS if self.count(p) > 0]

    def keeps_anything(self) -> bool:
        """Whether the policy keeps any item at all (a policy of all zeros would prune everything)."""
        return self.last > 0 or bool(self.active())

    @classmethod
    def parse(cls, text: str) -> Policy:
        """The policy written as ``last=3 daily=7 weekly=4`` (spaces or commas between terms;
        ``str(policy)`` writes it back).

        :raises ValueError: an unknown or repeated term, or a bad count.
        """
        values: dict[str, int] = {}
        for term in re.split(r"[\s,]+", text.strip()):
            if not term:
                continue
            match = _TERM.match(term)
            if match is None:
                raise ValueError(f"{term!r} is not a retention term (last=N, hourly=N, daily=N, weekly=N, "
                                 "monthly=N, yearly=N, frequently=N, frequent_minutes=N)")
            if match[1] in values:
                raise ValueError(f"{match[1]} is given twice")
            values[match[1]] = int(match[2])
        return cls(**values)

    def __str__(self) -> str:
        terms = [f"{f.name}={getattr(self, f.name)}" for f in fields(self)
                 if f.name != "frequent_minutes" and getattr(self, f.name)]
        if self.frequently and self.frequent_minutes != 15:
            terms.append(f"frequent_minutes={self.frequent_minutes}")
        order = ["last", *PERIODS, "frequent_minutes"]
        return " ".join(sorted(terms, key=lambda t: order.index(t.split("=")[0])))


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
    """Periods whose item is due at ``now``: the policy keeps some, and none was taken in
    the current slot. However many slots were missed (the worker was down), a period is due
    once: one item catches up, not one per missed slot."""
    due = []
    for period in policy.active():
        last = last_taken.get(period)
        if last is None or bucket(period, now, policy.frequent_minutes) > bucket(period, last, policy.frequent_minutes):
            due.append(period)
    return due


@dataclass(frozen=True)
class Candidate:
    """An item as pruning sees it (a snapshot — all members of a recursive one as one — or a
    backup point).

    ``held``: it carries a user hold (never destroyed). ``backup_base``: the value of a
    backup marker on it (which backup relies on it), or ``None``. ``periods``: the periods it
    counts for (a scheduled snapshot: the one in its name; a backup point: see
    :func:`label_by_bucket`); ``None`` means not managed by the policy, never pruned.
    """

    name: str
    created: datetime
    held: bool = False
    backup_base: str | None = None
    periods: tuple[str, ...] | None = None


def protected(items: Iterable[Candidate]) -> set[str]:
    """Names pruning must never destroy: held items and, per backup marker value, the newest
    item carrying it."""
    keep = set()
    newest: dict[str, Candidate] = {}
    for item in items:
        if item.held:
            keep.add(item.name)
        if item.backup_base is not None:
            current = newest.get(item.backup_base)
            if current is None or (item.created, item.name) > (current.created, current.name):
                newest[item.backup_base] = item
    return keep | {item.name for item in newest.values()}


def label_by_bucket(items: Iterable[Candidate], policy: Policy) -> list[Candidate]:
    """Items without a label (backup points), each labelled with the active periods for which
    it is the newest item of its bucket (one point a day counts as that day's daily, …); items
    that already have labels are returned unchanged."""
    items = list(items)
    labels: dict[str, list[str]] = {item.name: [] for item in items}
    for period in policy.active():
        newest: dict[tuple[int, ...], Candidate] = {}
        for item in items:
            if item.periods is not None:
                continue
            key = bucket(period, item.created, policy.frequent_minutes)
            if key not in newest or (item.created, item.name) > (newest[key].created, newest[key].name):
                newest[key] = item
        for item in newest.values():
            labels[item.name].append(period)
    return [item if item.periods is not None else replace(item, periods=tuple(labels[item.name]))
            for item in items]


def prune(items: Iterable[Candidate], policy: Policy, now: datetime) -> list[str]:
    """Names of the items to destroy under ``policy`` at ``now``, oldest first.

    Only managed items (``periods`` not ``None``) are ever returned; an item with several
    labels is kept if any of them keeps it. See the module docstring for the rule.
    """
    items = [item for item in items]
    keep = protected(items)
    managed = sorted((item for item in items if item.periods is not None),
                     key=lambda i: (i.created, i.name), reverse=True)  # newest first
    keep.update(item.name for item in managed[:policy.last])
    for period in PERIODS:
        entries = [item for item in managed if period in (item.periods or ())]
        count = policy.count(period)
        horizon = now - policy.length(period) * count
        keep.update(item.name for item in entries[:count])
        keep.update(item.name for item in entries[count:] if item.created >= horizon)
    doomed = [item for item in managed if item.name not in keep]
    return [item.name for item in sorted(doomed, key=lambda i: (i.created, i.name))]
