"""backup_jobs: the backup_job table.

Revision ID: backup_jobs_0001
Revises:
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "backup_jobs_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("backup_jobs",)
depends_on: str | Sequence[str] | None = None

# Spelled out, not imported from the models: a migration must not change when models do.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
JSON_TEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")
TIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    """Create backup_job."""
    op.create_table(
        "backup_job",
        sa.Column("id", ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False, unique=True),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=63), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("schedule", sa.String(length=120), nullable=False),
        sa.Column("vms", JSON_TEXT, nullable=False),
        sa.Column("owners", JSON_TEXT, nullable=False),
        sa.Column("tags", JSON_TEXT, nullable=False),
        sa.Column("retention", sa.String(length=200), nullable=False),
        sa.Column("window_minutes", sa.Integer(), nullable=False),
        sa.Column("enabled", sa.Boolean(), nullable=False),
        sa.Column("drill_schedule", sa.String(length=120), nullable=False),
        sa.Column("drill_check", JSON_TEXT, nullable=False),
        sa.Column("drill_timeout", sa.Integer(), nullable=False),
        sa.Column("created", TIME, nullable=False),
        sa.Column("last_slot", TIME, nullable=True),
        sa.Column("last_drill_slot", TIME, nullable=True),
        sa.Column("last_task", sa.String(length=64), nullable=True),
        sa.Column("last_started", TIME, nullable=True),
        sa.Column("last_finished", TIME, nullable=True),
        sa.Column("last_state", sa.String(length=16), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
        sa.Column("last_success", TIME, nullable=True),
        sa.Column("overdue_since", TIME, nullable=True),
        mysql_charset="utf8mb4",
    )


def downgrade() -> None:
    """Drop backup_job."""
    op.drop_table("backup_job")
