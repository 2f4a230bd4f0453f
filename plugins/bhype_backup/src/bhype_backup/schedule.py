"""Cron-like schedules of backup jobs, as pure functions: parse, match, the latest due slot.

Five fields as in crontab(5) — minute, hour, day of month, month, day of week (0-7, 0 and 7
are Sunday) — each ``*``, ``N``, ``A-B``, ``*/S`` or ``A-B/S``, comma-separated lists; and
crontab(5)'s shorthands ``@hourly``, ``@daily``, ``@weekly``, ``@monthly``, ``@yearly``. As in
cron(8), when both day of month and day of week are restricted, a day matching either runs.
Times are UTC (like retention buckets), so a schedule never runs twice or not at all when
the host's clock changes for daylight saving time.

A job is due when the latest slot (:func:`latest_slot`) is newer than the slot its last run
was submitted for: however many slots a stopped worker missed, the job runs once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

SHORTHANDS = {
    "@hourly": "0 * * * *",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@weekly": "0 0 * * 0",
    "@monthly": "0 0 1 * *",
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
}
_FIELDS = (("minute", 0, 59), ("hour", 0, 23), ("day", 1, 31), ("month", 1, 12), ("day_of_week", 0, 7))
LOOKBACK_DAYS = 400  # a schedule that matches no day in this long (e.g. "0 0 30 2 *") never runs


def _field(text: str, name: str, low: int, high: int) -> frozenset[int]:
    values: set[int] = set()
    for part in text.split(","):
        base, _, step_text = part.partition("/")
        step = 1
        if step_text:
            if not step_text.isdigit() or int(step_text) < 1:
                raise ValueError(f"{name}: bad step in {part!r}")
            step = int(step_text)
        if base == "*":
            start, end = low, high
        elif "-" in base:
            a, _, b = base.partition("-")
            if not (a.isdigit() and b.isdigit()):
                raise ValueError(f"{name}: bad range {part!r}")
            start, end = int(a), int(b)
        elif base.isdigit():
            start = end = int(base)
            if step_text:  # "5/10" means from 5 to the end, every 10 (as Vixie cron reads it)
                end = high
        else:
            raise ValueError(f"{name}: {part!r} is not a number, range or '*'")
        if not low <= start <= end <= high:
            raise ValueError(f"{name}: {part!r} is outside {low}-{high}")
        values.update(range(start, end + 1, step))
    return frozenset(values)


@dataclass(frozen=True)
class Schedule:
    """A parsed schedule (use :func:`parse`)."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]  # 0 = Sunday … 6 = Saturday (7 folded into 0)
    any_day: bool
    any_weekday: bool

    def day_matches(self, when: datetime) -> bool:
        """Whether the date of ``when`` is a day the schedule runs on (cron's OR rule)."""
        if when.month not in self.months:
            return False
        in_days = when.day in self.days
        in_weekdays = (when.isoweekday() % 7) in self.weekdays
        if self.any_day or self.any_weekday:
            return in_days and in_weekdays
        return in_days or in_weekdays

    def matches(self, when: datetime) -> bool:
        """Whether the minute of ``when`` (UTC) is a slot of this schedule."""
        t = when.astimezone(UTC)
        return t.minute in self.minutes and t.hour in self.hours and self.day_matches(t)


def parse(text: str) -> Schedule:
    """Parse a crontab(5) schedule (five fields or a shorthand).

    :raises ValueError: a malformed field (the message names it).
    """
    spec = SHORTHANDS.get(text.strip(), text.strip())
    parts = spec.split()
    if len(parts) != 5:
        raise ValueError(f"a schedule has five fields (minute hour day month day-of-week) or is one of "
                         f"{', '.join(SHORTHANDS)}; got {text!r}")
    sets = [_field(part, name, low, high) for part, (name, low, high) in zip(parts, _FIELDS, strict=True)]
    weekdays = frozenset(d % 7 for d in sets[4])
    return Schedule(text.strip(), sets[0], sets[1], sets[2], sets[3], weekdays,
                    any_day=parts[2].startswith("*"), any_weekday=parts[4].startswith("*"))


def latest_slot(schedule: Schedule, now: datetime) -> datetime | None:
    """The newest slot at or before ``now`` (UTC, whole minute); ``None`` if none in
    :data:`LOOKBACK_DAYS`. Walks days, then hours, then minutes backwards: at most a few
    hundred steps, whatever the schedule."""
    t = now.astimezone(UTC).replace(second=0, microsecond=0)
    hours = sorted(schedule.hours, reverse=True)
    minutes = sorted(schedule.minutes, reverse=True)
    day = t.replace(hour=0, minute=0)
    for back in range(LOOKBACK_DAYS + 1):
        candidate_day = day - timedelta(days=back)
        if not schedule.day_matches(candidate_day):
            continue
        for hour in hours:
            if back == 0 and hour > t.hour:
                continue
            for minute in minutes:
                slot = candidate_day.replace(hour=hour, minute=minute)
                if slot <= t:
                    return slot
    return None


def due_slot(schedule: Schedule, last_slot: datetime | None, now: datetime) -> datetime | None:
    """The slot to run now, or ``None``: the latest slot, if it is newer than ``last_slot``
    (the slot of the last submitted run). Missed slots collapse into this one."""
    slot = latest_slot(schedule, now)
    if slot is None or (last_slot is not None and slot <= last_slot.astimezone(UTC)):
        return None
    return slot
