"""Core table core_fact: host facts the worker probed (zfs, rsync, host info), read by the API.

Revision ID: core_0006
Revises: core_0005
Create Date: 2025-01-06
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "core_0006"
down_revision: str | Sequence[str] | None = "core_0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out, not imported from the models (see core_0001).
TIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
JSON_TEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


def upgrade() -> None:
    """Create core_fact, keyed by the fact's name."""
    op.create_table(
        "core_fact",
        sa.Column("key", sa.String(length=128), primary_key=True, nullable=False),
        sa.Column("value", JSON_TEXT, nullable=False),
        sa.Column("updated", TIME, nullable=False),
        mysql_charset="utf8mb4",
    )


def downgrade() -> None:
    """Drop core_fact."""
    op.drop_table("core_fact")
