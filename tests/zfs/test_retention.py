"""Retention as pure functions: due periods (missed runs caught up once) and pruning, checked
exhaustively on small cases and by invariants on many seeded random ones."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, datetime, timedelta

import pytest

from bhype_zfs.retention import (
    PERIODS,
    Candidate,
    Policy,
    bucket,
    due_periods,
    parse_name,
    protected,
    prune,
    snapshot_name,
)

T0 = datetime(2025, 1, 31, 14, 0, tzinfo=UTC)


def at(hours: float = 0, **delta) -> datetime:
    return T0 + timedelta(hours=hours, **delta)


def snap(period: str, when: datetime, held: bool = False, base: str | None = None) -> Candidate:
    return Candidate(snapshot_name(period, when), when, held, base)


def test_names_round_trip_and_foreign_names_are_not_ours():
    name = snapshot_name("hourly", T0)
    assert name == "bhype_20250131T140000Z_hourly"
    assert parse_name(name) == (T0, "hourly")
    for foreign in ("autosnap_2025-01-31_14:00:00_hourly", "zfs-auto-snap_hourly-2025-01-31-1400",
                    "bhype_20250131T140000Z_minutely", "manual-20250131T140000Z", "bhype_2025_hourly"):
        assert parse_name(foreign) is None
    with pytest.raises(ValueError):
        snapshot_name("minutely", T0)


def test_policy_checks_its_numbers():
    with pytest.raises(ValueError, match="hourly"):
        Policy(hourly=-1)
    with pytest.raises(ValueError, match="frequent_minutes"):
        Policy(frequently=4, frequent_minutes=7)
    assert Policy(hourly=2, monthly=1).active() == ["hourly", "monthly"]


@pytest.mark.parametrize(("period", "last", "now", "due"), [
    ("hourly", at(minutes=-1), at(), True),           # 13:59 -> 14:00
    ("hourly", at(), at(minutes=59), False),
    ("frequently", at(minutes=14), at(minutes=15), True),
    ("frequently", at(minutes=15), at(minutes=29), False),
    ("daily", at(hours=9, minutes=59), at(hours=10), True),   # 23:59 -> 00:00 UTC
    ("daily", at(hours=-14), at(hours=9), False),
    ("weekly", datetime(2025, 2, 2, 23, tzinfo=UTC), datetime(2025, 2, 3, 0, tzinfo=UTC), True),  # Sun -> Mon
    ("weekly", datetime(2025, 2, 3, 0, tzinfo=UTC), datetime(2025, 2, 9, 23, tzinfo=UTC), False),
    ("monthly", datetime(2025, 1, 31, tzinfo=UTC), datetime(2025, 2, 1, tzinfo=UTC), True),
    ("yearly", datetime(2025, 1, 1, tzinfo=UTC), datetime(2025, 12, 31, 23, tzinfo=UTC), False),
])
def test_due_by_period_slot(period, last, now, due):
    policy = Policy(**{period: 1})
    assert due_periods(policy, {period: last}, now) == ([period] if due else [])


def test_first_run_takes_every_active_period_and_inactive_never():
    policy = Policy(hourly=24, daily=7, monthly=3)
    assert due_periods(policy, {}, T0) == ["hourly", "daily", "monthly"]
    assert due_periods(policy, {"hourly": T0, "daily": T0, "monthly": T0}, at(minutes=5)) == []


def test_missed_runs_are_caught_up_once():
    """The worker was down 5 hours: one hourly snapshot on return, not five; then none until the next hour."""
    policy = Policy(hourly=48)
    taken: list[datetime] = []
    last: dict[str, datetime | None] = {}
    minute = at()
    downtime = (at(1), at(6, minutes=30))
    while minute < at(10):
        if not downtime[0] <= minute < downtime[1]:
            if due_periods(policy, last, minute):
                taken.append(minute)
                last["hourly"] = minute
        minute += timedelta(minutes=1)
    assert taken == [at(h) for h in range(1)] + [downtime[1]] + [at(h) for h in range(7, 10)]


def test_clock_going_backwards_waits_for_the_next_slot():
    assert due_periods(Policy(hourly=1), {"hourly": at(2)}, at(1)) == []


def test_buckets_are_ordered_in_time():
    rng = random.Random(7)
    for _ in range(2000):
        a = T0 + timedelta(seconds=rng.randrange(-10**8, 10**8))
        b = a + timedelta(seconds=rng.randrange(0, 10**7))
        for period in PERIODS:
            assert bucket(period, a) <= bucket(period, b)


def check_invariants(snaps: list[Candidate], policy: Policy, now: datetime) -> list[str]:
    """prune() and every property it promises; returns its answer."""
    doomed = prune(snaps, policy, now)
    by_name = {s.name: s for s in snaps}
    assert len(set(doomed)) == len(doomed)
    assert [by_name[n].created for n in doomed] == sorted(by_name[n].created for n in doomed)  # oldest first
    keep = protected(snaps)
    for name in doomed:
        parsed = parse_name(name)
        assert parsed is not None, "only bHype's scheduled names are pruned"
        assert not by_name[name].held, "a held snapshot is never pruned"
        assert name not in keep
        period = parsed[1]
        assert by_name[name].created < now - policy.length(period) * policy.count(period)
    for base in {s.backup_base for s in snaps if s.backup_base}:
        newest = max((s for s in snaps if s.backup_base == base), key=lambda s: (s.created, s.name))
        assert newest.name not in doomed, "the newest snapshot a backup relies on stays"
    remaining = [s for s in snaps if s.name not in doomed]
    for period in PERIODS:
        mine = sorted((s for s in snaps if (parse_name(s.name) or (0, ""))[1] == period),
                      key=lambda s: (s.created, s.name), reverse=True)
        for kept in mine[: policy.count(period)]:
            assert kept.name not in doomed, f"the {policy.count(period)} newest {period} stay"
        for other in mine[policy.count(period):]:  # maximal: anything kept beyond the count has a reason
            if other.name not in doomed:
                assert other.name in keep or other.created >= now - policy.length(period) * policy.count(period)
    assert prune(remaining, policy, now) == [], "pruning twice changes nothing"
    return doomed


def test_exhaustive_small_cases_one_period():
    """Every hold pattern of up to 5 hourly snapshots, every count 0-5, several 'now's."""
    for size in range(6):
        times = [at(-h) for h in range(size)]
        for holds in itertools.product([False, True], repeat=size):
            snaps = [snap("hourly", t, held) for t, held in zip(times, holds, strict=True)]
            for count in range(6):
                for now in (at(), at(3), at(48)):
                    doomed = check_invariants(snaps, Policy(hourly=count), now)
                    expected = [s.name for s in sorted(snaps[count:], key=lambda s: s.created)
                                if not s.held and s.created < now - timedelta(hours=count)]
                    assert doomed == expected


def test_backup_markers_protect_only_the_newest_per_backup():
    snaps = [snap("daily", at(-24 * d), base="job-a" if d in (3, 5) else ("job-b" if d == 9 else None))
             for d in range(12)]
    doomed = check_invariants(snaps, Policy(daily=2), at())
    assert snapshot_name("daily", at(-72)) not in doomed       # newest of job-a
    assert snapshot_name("daily", at(-120)) in doomed          # an older job-a base may go
    assert snapshot_name("daily", at(-216)) not in doomed      # only base of job-b


def test_foreign_snapshots_are_never_touched():
    snaps = [Candidate("autosnap_2020-01-01_00:00:00_hourly", at(-10000)),
             Candidate("manual-1", at(-9000)), snap("hourly", at(-9000))]
    assert prune(snaps, Policy(), at()) == [snapshot_name("hourly", at(-9000))]


def test_random_sets_keep_every_promise():
    rng = random.Random(20250131)
    for _ in range(200):
        policy = Policy(**{p: rng.choice([0, 0, 1, 2, 5]) for p in PERIODS}, frequent_minutes=rng.choice([5, 15]))
        now = at(rng.randrange(0, 5000))
        snaps, used = [], set()
        for _ in range(rng.randrange(0, 60)):
            when = now - timedelta(minutes=rng.randrange(0, 60 * 24 * 400))
            period = rng.choice(PERIODS)
            name = snapshot_name(period, when) if rng.random() < 0.9 else f"autosnap_{rng.random()}"
            if name in used:
                continue
            used.add(name)
            snaps.append(Candidate(name, when, held=rng.random() < 0.1,
                                   backup_base=rng.choice([None, None, None, "a", "b"])))
        check_invariants(snaps, policy, now)


def test_a_month_of_runs_keeps_the_counts():
    """Run every 15 minutes for 40 days as the periodic job would: take what is due, prune."""
    policy = Policy(frequently=4, hourly=24, daily=7, weekly=2, monthly=1)
    snaps: list[Candidate] = []
    last: dict[str, datetime | None] = {}
    now = at()
    while now < at(24 * 40):
        for period in due_periods(policy, last, now):
            snaps.append(snap(period, now))
            last[period] = now
        doomed = set(prune(snaps, policy, now))
        snaps = [s for s in snaps if s.name not in doomed]
        now += timedelta(minutes=15)
    counts = {p: sum(1 for s in snaps if s.name.endswith("_" + p)) for p in PERIODS}
    for period in ("frequently", "hourly", "daily", "weekly", "monthly"):
        # The newest N always stay; the (N+1)th goes once it is older than N periods.
        assert policy.count(period) <= counts[period] <= policy.count(period) + 1, (period, counts)
    assert counts["yearly"] == 0
