"""migrate: peer hosts and the move journal.

Revision ID: migrate_0001
Revises:
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "migrate_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("migrate",)
depends_on: str | Sequence[str] | None = None

# Spelled out, not imported from the models: a migration must not change when models do.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    """Create migrate_peer and migrate_move."""
    op.create_table(
        "migrate_peer",
        sa.Column("id", ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False, unique=True),
        sa.Column("url", sa.String(length=255), nullable=False),
        sa.Column("ssh_host", sa.String(length=255), nullable=False),
        sa.Column("ssh_port", sa.Integer(), nullable=False),
        sa.Column("ssh_user", sa.String(length=63), nullable=False),
        sa.Column("host_key", sa.Text(), nullable=False),
        sa.Column("token_hint", sa.String(length=16), nullable=False),
        sa.Column("created", TIME, nullable=False),
        sa.Column("tested", TIME, nullable=True),
        sa.Column("test_ok", sa.Boolean(), nullable=True),
        sa.Column("test_report", sa.Text(), nullable=False),
        mysql_charset="utf8mb4",
    )
    op.create_table(
        "migrate_move",
        sa.Column("id", ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=False, index=True),
        sa.Column("vm_name", sa.String(length=63), nullable=False, index=True),
        sa.Column("vm_uuid", sa.String(length=36), nullable=False),
        sa.Column("peer", sa.String(length=63), nullable=False),
        sa.Column("mode", sa.String(length=8), nullable=False),
        sa.Column("transport", sa.String(length=8), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("bytes_sent", sa.BigInteger(), nullable=False),
        sa.Column("offline_seconds", sa.Float(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=False),
        sa.Column("cleanup", sa.Text(), nullable=False),
        sa.Column("created", TIME, nullable=False),
        sa.Column("finished", TIME, nullable=True),
        mysql_charset="utf8mb4",
    )


def downgrade() -> None:
    """Drop the plugin's tables."""
    op.drop_table("migrate_move")
    op.drop_table("migrate_peer")
