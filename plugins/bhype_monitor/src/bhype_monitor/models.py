"""The plugin's table: metric history, one row per series (host or VM), tier and time bucket."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import BigInteger, Index, Integer, SmallInteger, Text
from sqlmodel import Field, SQLModel

from bhype_core.plugin_api import TABLE_OPTIONS

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
SERIES_LENGTH = 80  # "host:<group host name>" (63) or "vm:<uuid>" (36)


class MonitorSample(SQLModel, table=True):
    """Table ``monitor_sample``: the values of one series in one time bucket of one tier.

    ``ts`` is the bucket's start (seconds since the epoch, a multiple of the tier's step);
    ``n`` how many raw samples it aggregates; ``data`` compact JSON: ``{metric: value}`` on the
    raw tier, ``{metric: [min, avg, max]}`` on the others (:mod:`bhype_monitor.history`).
    """

    __tablename__ = "monitor_sample"  # type: ignore[assignment]
    __table_args__ = (
        # Reads are "one tier of one series over a time range"; pruning is "one tier before t".
        Index("ix_monitor_sample_tier_ts", "tier", "ts"),
        dict(TABLE_OPTIONS),
    )

    series: str = Field(primary_key=True, max_length=SERIES_LENGTH)
    tier: int = Field(primary_key=True, sa_type=SmallInteger)
    ts: int = Field(primary_key=True, sa_type=BigInteger)
    n: int = Field(default=1, sa_type=Integer)
    data: str = Field(sa_type=Text)


MONITOR_MODELS: tuple[type[SQLModel], ...] = (MonitorSample,)
