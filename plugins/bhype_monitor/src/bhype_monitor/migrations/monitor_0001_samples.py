"""monitor: the metric history table.

Revision ID: monitor_0001
Revises:
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "monitor_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("monitor",)
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create monitor_sample (spelled out, not imported: a migration must not change with the model)."""
    op.create_table(
        "monitor_sample",
        sa.Column("series", sa.String(length=48), primary_key=True, nullable=False),
        sa.Column("tier", sa.SmallInteger(), primary_key=True, nullable=False),
        sa.Column("ts", sa.BigInteger(), primary_key=True, nullable=False),
        sa.Column("n", sa.Integer(), nullable=False),
        sa.Column("data", sa.Text(), nullable=False),
        mysql_charset="utf8mb4",
    )
    op.create_index("ix_monitor_sample_tier_ts", "monitor_sample", ["tier", "ts"])


def downgrade() -> None:
    """Drop monitor_sample."""
    op.drop_table("monitor_sample")
