"""Core table core_vm: one row per VM (identity, owner, datastore, spec, cached state).

Revision ID: core_0004
Revises: core_0003
Create Date: 2025-01-04
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "core_0004"
down_revision: str | Sequence[str] | None = "core_0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out, not imported from the models (see core_0001).
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
JSON_TEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


def upgrade() -> None:
    """Create core_vm with unique name and UUID and an index on owner."""
    op.create_table(
        "core_vm",
        sa.Column("id", ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False, unique=True),
        sa.Column("uuid", sa.String(length=36), nullable=False, unique=True),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("datastore", sa.String(length=63), nullable=False),
        sa.Column("spec", JSON_TEXT, nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("state_detail", sa.Text(), nullable=False),
        sa.Column("status", JSON_TEXT, nullable=False),
        sa.Column("created", TIME, nullable=False),
        sa.Column("updated", TIME, nullable=False),
        mysql_charset="utf8mb4",
    )
    op.create_index("ix_core_vm_owner", "core_vm", ["owner"])


def downgrade() -> None:
    """Drop core_vm."""
    op.drop_table("core_vm")
