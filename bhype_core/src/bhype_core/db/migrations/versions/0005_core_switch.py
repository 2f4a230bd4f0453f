"""Core table core_switch: virtual switches (bridge, uplink, VLAN, host address, NAT) (issue 5).

Revision ID: core_0005
Revises: core_0004
Create Date: 2025-01-05
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "core_0005"
down_revision: str | Sequence[str] | None = "core_0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out, not imported from the models (see core_0001).
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    """Create core_switch with unique name and bridge."""
    op.create_table(
        "core_switch",
        sa.Column("id", ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False, unique=True),
        sa.Column("bridge", sa.String(length=16), nullable=False, unique=True),
        sa.Column("uplink", sa.String(length=16), nullable=True),
        sa.Column("vlan", sa.Integer(), nullable=True),
        sa.Column("mtu", sa.Integer(), nullable=True),
        sa.Column("address", sa.String(length=64), nullable=True),
        sa.Column("nat", sa.Boolean(), nullable=False),
        sa.Column("nat_interface", sa.String(length=16), nullable=True),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("created", TIME, nullable=False),
        mysql_charset="utf8mb4",
    )


def downgrade() -> None:
    """Drop core_switch."""
    op.drop_table("core_switch")
