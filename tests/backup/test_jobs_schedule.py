"""Backup job schedules (crontab(5) in UTC): parsing, matching, the latest slot, and due runs
(missed slots collapse into one run)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from bhype_backup import schedule as cron

T = datetime(2026, 3, 4, 10, 37, 12, tzinfo=UTC)  # a Wednesday


def test_fields_and_shorthands():
    s = cron.parse("*/15 2-4,22 1,15 * 1-5")
    assert s.minutes == {0, 15, 30, 45} and s.hours == {2, 3, 4, 22} and s.days == {1, 15}
    assert s.weekdays == {1, 2, 3, 4, 5}
    assert cron.parse("@daily") == cron.parse("0 0 * * *").__class__(**{**cron.parse("0 0 * * *").__dict__,
                                                                        "text": "@daily"})
    assert cron.parse("0 0 * * 7").weekdays == {0}  # 7 is Sunday too
    assert cron.parse("5/20 * * * *").minutes == {5, 25, 45}


@pytest.mark.parametrize(("text", "word"), [
    ("* * * *", "five fields"), ("61 * * * *", "minute"), ("* 24 * * *", "hour"), ("* * 0 * *", "day"),
    ("* * * 13 *", "month"), ("* * * * 8", "day_of_week"), ("*/0 * * * *", "step"), ("a * * * *", "minute"),
    ("5-1 * * * *", "minute"), ("@often", "five fields"),
])
def test_bad_schedules_name_the_field(text, word):
    with pytest.raises(ValueError, match=word):
        cron.parse(text)


def test_latest_slot():
    assert cron.latest_slot(cron.parse("*/15 * * * *"), T) == T.replace(minute=30, second=0)
    assert cron.latest_slot(cron.parse("0 3 * * *"), T) == T.replace(hour=3, minute=0, second=0)
    assert cron.latest_slot(cron.parse("0 12 * * *"), T) == (T - timedelta(days=1)).replace(hour=12, minute=0, second=0)
    assert cron.latest_slot(cron.parse("@weekly"), T) == datetime(2026, 3, 1, tzinfo=UTC)  # Sunday 00:00
    assert cron.latest_slot(cron.parse("37 10 * * *"), T) == T.replace(second=0)  # this very minute
    assert cron.latest_slot(cron.parse("0 0 30 2 *"), T) is None  # never


def test_day_of_month_or_day_of_week_when_both_are_restricted():
    s = cron.parse("0 0 1 * 1")  # the 1st, or any Monday (crontab(5))
    assert s.matches(datetime(2026, 3, 2, tzinfo=UTC))  # a Monday, not the 1st
    assert s.matches(datetime(2026, 4, 1, tzinfo=UTC))  # the 1st, a Wednesday
    assert not s.matches(datetime(2026, 3, 3, tzinfo=UTC))
    only_mondays = cron.parse("0 0 * * 1")
    assert not only_mondays.matches(datetime(2026, 4, 1, tzinfo=UTC))


def test_missed_slots_run_once():
    hourly = cron.parse("0 * * * *")
    last = T.replace(hour=2, minute=0, second=0)  # the worker was down from 02:xx to 10:37
    slot = cron.due_slot(hourly, last, T)
    assert slot == T.replace(minute=0, second=0)  # one run, for the newest slot only
    assert cron.due_slot(hourly, slot, T + timedelta(minutes=10)) is None  # served
    assert cron.due_slot(hourly, slot, T + timedelta(minutes=23)) == slot + timedelta(hours=1)
    assert cron.due_slot(hourly, None, T) == slot
