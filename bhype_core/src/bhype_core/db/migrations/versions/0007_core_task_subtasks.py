"""Core table core_task: ``parent_id`` (sub-tasks) and ``checkpoint`` (resumable tasks).

Revision ID: core_0007
Revises: core_0006
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "core_0007"
down_revision: str | Sequence[str] | None = "core_0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out, not imported from the models (see core_0001).
JSON_TEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


def upgrade() -> None:
    """Add core_task.parent_id (indexed) and core_task.checkpoint (both nullable: plain
    ``ADD COLUMN`` on SQLite and MariaDB alike, no table rebuild)."""
    op.add_column("core_task", sa.Column("parent_id", sa.String(length=36), nullable=True))
    op.add_column("core_task", sa.Column("checkpoint", JSON_TEXT, nullable=True))
    op.create_index("ix_core_task_parent_id", "core_task", ["parent_id"])


def downgrade() -> None:
    """Drop them again."""
    op.drop_index("ix_core_task_parent_id", table_name="core_task")
    op.drop_column("core_task", "checkpoint")
    op.drop_column("core_task", "parent_id")
