"""snmp: notification managers and the engine ID.

Revision ID: snmp_0001
Revises:
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "snmp_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("snmp",)
depends_on: str | Sequence[str] | None = None

# Spelled out, not imported from the models: a migration must not change when models do.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    """Create snmp_manager and snmp_engine."""
    op.create_table(
        "snmp_manager",
        sa.Column("id", ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False, unique=True),
        sa.Column("host", sa.String(length=253), nullable=False),
        sa.Column("port", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=4), nullable=False),
        sa.Column("notify_type", sa.String(length=8), nullable=False),
        sa.Column("community", sa.Text(), nullable=False),
        sa.Column("user", sa.String(length=32), nullable=False),
        sa.Column("auth_protocol", sa.String(length=8), nullable=False),
        sa.Column("auth_key", sa.Text(), nullable=False),
        sa.Column("priv_protocol", sa.String(length=8), nullable=False),
        sa.Column("priv_key", sa.Text(), nullable=False),
        sa.Column("min_severity", sa.String(length=8), nullable=False),
        sa.Column("rate_limit", sa.Integer(), nullable=True),
        sa.Column("timeout", sa.Integer(), nullable=False),
        sa.Column("retries", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("created", TIME, nullable=False),
        mysql_charset="utf8mb4",
    )
    op.create_table(
        "snmp_engine",
        sa.Column("id", ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("engine_id", sa.String(length=66), nullable=False),
        sa.Column("created", TIME, nullable=False),
        mysql_charset="utf8mb4",
    )


def downgrade() -> None:
    """Drop both tables."""
    op.drop_table("snmp_engine")
    op.drop_table("snmp_manager")
