"""backup: targets and backup points.

Revision ID: backup_0001
Revises:
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "backup_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("backup",)
depends_on: str | Sequence[str] | None = None

# Spelled out, not imported from the models: a migration must not change when models do.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    """Create backup_target and backup_point."""
    op.create_table(
        "backup_target",
        sa.Column("id", ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False, unique=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("destination", sa.String(length=1024), nullable=False),
        sa.Column("port", sa.Integer(), nullable=True),
        sa.Column("windows", sa.Boolean(), nullable=False),
        sa.Column("host_key", sa.Text(), nullable=False),
        sa.Column("has_secret", sa.Boolean(), nullable=False),
        sa.Column("description", sa.String(length=255), nullable=False),
        sa.Column("tested_at", TIME, nullable=True),
        sa.Column("test_ok", sa.Boolean(), nullable=True),
        sa.Column("test_message", sa.Text(), nullable=False),
        sa.Column("free_bytes", sa.BigInteger(), nullable=True),
        sa.Column("created", TIME, nullable=False),
        mysql_charset="utf8mb4",
    )
    op.create_table(
        "backup_point",
        sa.Column("id", ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("vm_uuid", sa.String(length=36), nullable=False),
        sa.Column("vm_name", sa.String(length=63), nullable=False),
        sa.Column("target", sa.String(length=63), nullable=False),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("mode", sa.String(length=16), nullable=False),
        sa.Column("created", TIME, nullable=False),
        sa.Column("finished", TIME, nullable=True),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("bytes_sent", sa.BigInteger(), nullable=False),
        sa.Column("manifest_sha256", sa.String(length=64), nullable=False),
        sa.Column("complete", sa.Boolean(), nullable=False),
        sa.Column("job_id", ID, nullable=True),
        sa.Column("task_id", ID, nullable=True),
        sa.Column("note", sa.Text(), nullable=False),
        sa.Column("verify_state", sa.String(length=16), nullable=False),
        sa.Column("verified_at", TIME, nullable=True),
        sa.Column("drill_state", sa.String(length=16), nullable=False),
        sa.Column("drill_at", TIME, nullable=True),
        sa.Column("drill_excerpt", sa.Text(), nullable=False),
        mysql_charset="utf8mb4",
    )
    op.create_index("ix_backup_point_vm_uuid_created", "backup_point", ["vm_uuid", "created"])
    op.create_index("ix_backup_point_target", "backup_point", ["target"])


def downgrade() -> None:
    """Drop the plugin's tables."""
    op.drop_table("backup_point")
    op.drop_table("backup_target")
