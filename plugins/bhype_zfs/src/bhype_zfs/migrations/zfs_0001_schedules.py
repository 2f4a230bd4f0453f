"""zfs: snapshot schedules, their per-period state, pool health state.

Revision ID: zfs_0001
Revises:
Create Date: 2025-02-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "zfs_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("zfs",)
depends_on: str | Sequence[str] | None = None

# Spelled out, not imported from the models: a migration must not change when models do.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    """Create zfs_schedule, zfs_schedule_state and zfs_health_state."""
    op.create_table(
        "zfs_schedule",
        sa.Column("id", ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False, unique=True),
        sa.Column("dataset", sa.String(length=255), nullable=False),
        sa.Column("vm", sa.String(length=63), nullable=True),
        sa.Column("recursive", sa.Boolean(), nullable=False),
        *(sa.Column(period, sa.Integer(), nullable=False)
          for period in ("frequently", "hourly", "daily", "weekly", "monthly", "yearly", "frequent_minutes")),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created", TIME, nullable=False),
        mysql_charset="utf8mb4",
    )
    op.create_table(
        "zfs_schedule_state",
        sa.Column("id", ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("schedule_id", ID, sa.ForeignKey("zfs_schedule.id"), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("last_taken", TIME, nullable=True),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("updated", TIME, nullable=False),
        sa.UniqueConstraint("schedule_id", "period"),
        mysql_charset="utf8mb4",
    )
    op.create_table(
        "zfs_health_state",
        sa.Column("id", ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("pool", sa.String(length=255), nullable=False, unique=True),
        sa.Column("health", sa.String(length=16), nullable=False),
        sa.Column("capacity_level", sa.String(length=16), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("allocated", sa.BigInteger(), nullable=False),
        sa.Column("free", sa.BigInteger(), nullable=False),
        sa.Column("updated", TIME, nullable=False),
        mysql_charset="utf8mb4",
    )


def downgrade() -> None:
    """Drop the plugin's tables."""
    op.drop_table("zfs_health_state")
    op.drop_table("zfs_schedule_state")
    op.drop_table("zfs_schedule")
