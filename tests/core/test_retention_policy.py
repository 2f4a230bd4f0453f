"""The core's one retention policy (``bhype_core.retention_policy`` via ``plugin_api``): its
text form, labelling unlabelled items (backup points) by bucket, and pruning with ``last``;
ZFS-labelled pruning is covered by tests/zfs/test_retention.py through the same function."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import pytest

from bhype_core.plugin_api import (
    RETENTION_PERIODS,
    RetentionCandidate,
    RetentionPolicy,
    retention_bucket,
    retention_label_by_bucket,
    retention_prune,
)

T0 = datetime(2025, 3, 31, 2, 0, tzinfo=UTC)  # a Monday


def point(name: str, when: datetime, **kw) -> RetentionCandidate:
    return RetentionCandidate(name, when, **kw)


def test_text_form_round_trips_and_refuses_bad_terms():
    policy = RetentionPolicy.parse("last=3, daily=7 weekly=4  monthly=12")
    assert policy == RetentionPolicy(last=3, daily=7, weekly=4, monthly=12)
    assert str(policy) == "last=3 daily=7 weekly=4 monthly=12"
    assert RetentionPolicy.parse(str(policy)) == policy
    assert str(RetentionPolicy(frequently=4, frequent_minutes=5)) == "frequently=4 frequent_minutes=5"
    assert RetentionPolicy.parse("") == RetentionPolicy() and not RetentionPolicy().keeps_anything()
    assert RetentionPolicy(last=1).keeps_anything()
    for bad, word in [("daily=x", "daily=x"), ("hourly=1 hourly=2", "twice"), ("minutely=3", "minutely"),
                      ("daily=-1", "daily=-1")]:
        with pytest.raises(ValueError, match=word):
            RetentionPolicy.parse(bad)
    with pytest.raises(ValueError, match="last"):
        RetentionPolicy(last=-1)


def test_label_by_bucket_marks_the_newest_of_each_bucket():
    items = [point("a", T0), point("b", T0 + timedelta(hours=5)), point("c", T0 + timedelta(days=1)),
             point("zfs", T0 + timedelta(hours=6), periods=("hourly",))]
    labelled = {c.name: c.periods for c in retention_label_by_bucket(items, RetentionPolicy(daily=7, weekly=2))}
    assert labelled == {"a": (), "b": ("daily",), "c": ("daily", "weekly"), "zfs": ("hourly",)}


def test_points_keep_last_daily_weekly():
    # One backup a day for 60 days, at 02:00 UTC; now is just after the newest.
    items = [point(f"p{i:02d}", T0 - timedelta(days=i)) for i in range(60)]
    policy = RetentionPolicy(last=2, daily=7, weekly=4)
    now = T0 + timedelta(minutes=30)
    doomed = retention_prune(retention_label_by_bucket(items, policy), policy, now)
    kept = sorted({c.name for c in items} - set(doomed))
    # 7 dailies (p00..p06); weekly: newest per ISO week (Sundays p01, p08, p15, p22) and
    # anything within 4 weeks that is its week's newest (p29 is 29 days old: beyond 28 days).
    assert kept == ["p00", "p01", "p02", "p03", "p04", "p05", "p06", "p08", "p15", "p22"]
    assert doomed == sorted(doomed, key=lambda n: -int(n[1:]))  # oldest first


def test_last_alone_and_what_is_never_pruned():
    items = [point(f"p{i}", T0 - timedelta(hours=i)) for i in range(6)]
    items.append(point("held", T0 - timedelta(days=30), held=True))
    items.append(point("base", T0 - timedelta(days=40), backup_base="job1"))
    items.append(point("foreign", T0 - timedelta(days=50), periods=None))
    policy = RetentionPolicy(last=2)
    labelled = [c if c.name == "foreign" else c for c in retention_label_by_bucket(items[:-1], policy)]
    doomed = retention_prune([*labelled, items[-1]], policy, T0)
    assert doomed == ["p5", "p4", "p3", "p2"]


@pytest.mark.parametrize("seed", range(40))
def test_invariants_on_random_point_sets(seed):
    rnd = random.Random(seed)
    count = rnd.randrange(1, 80)
    items = [point(f"p{i}", T0 - timedelta(minutes=rnd.randrange(0, 400 * 24 * 60))) for i in range(count)]
    policy = RetentionPolicy(last=rnd.randrange(0, 4), **{p: rnd.randrange(0, 5) for p in RETENTION_PERIODS[1:]})
    labelled = retention_label_by_bucket(items, policy)
    doomed = set(retention_prune(labelled, policy, T0))
    kept = [c for c in items if c.name not in doomed]
    newest_first = sorted(items, key=lambda c: (c.created, c.name), reverse=True)
    assert {c.name for c in newest_first[:policy.last]} <= {c.name for c in kept}
    for period in policy.active():
        # the newest item of each of the `count` newest buckets survives
        buckets: dict = {}
        for c in newest_first:
            buckets.setdefault(retention_bucket(period, c.created, policy.frequent_minutes), c)
        newest_buckets = sorted(buckets, reverse=True)[:policy.count(period)]
        assert {buckets[b].name for b in newest_buckets} <= {c.name for c in kept}
    if not policy.keeps_anything():
        assert kept == []
