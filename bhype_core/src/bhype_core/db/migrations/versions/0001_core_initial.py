"""Core tables: the host command audit trail and audit events.

Revision ID: core_0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

# Revision ids are global across every package's branch: keep them "<branch>_<number>".
revision: str = "core_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("core",)
depends_on: str | Sequence[str] | None = None

# Spelled out here rather than imported from the models: a migration must keep creating what
# it created on the day it was written, whatever the models become later.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
JSON_TEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


def upgrade() -> None:
    """Create core_host_command and core_audit_event with their indexes."""
    op.create_table(
        "core_host_command",
        sa.Column("id", ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("time", TIME, nullable=False),
        sa.Column("user", sa.String(length=255), nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=True),
        sa.Column("target", sa.String(length=255), nullable=False),
        sa.Column("argv", JSON_TEXT, nullable=False),
        sa.Column("returncode", sa.Integer(), nullable=True),
        sa.Column("duration", sa.Double(), nullable=False),
        sa.Column("dry_run", sa.Boolean(), nullable=False),
        sa.Column("stderr_tail", sa.Text(), nullable=False),
        mysql_charset="utf8mb4",
    )
    op.create_index("ix_core_host_command_time", "core_host_command", ["time"])
    op.create_index("ix_core_host_command_user", "core_host_command", ["user"])
    op.create_index("ix_core_host_command_task_id", "core_host_command", ["task_id"])

    op.create_table(
        "core_audit_event",
        sa.Column("id", ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("time", TIME, nullable=False),
        sa.Column("user", sa.String(length=255), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("target", sa.String(length=255), nullable=False),
        sa.Column("detail", JSON_TEXT, nullable=False),
        sa.Column("remote_addr", sa.String(length=64), nullable=True),
        mysql_charset="utf8mb4",
    )
    op.create_index("ix_core_audit_event_time", "core_audit_event", ["time"])
    op.create_index("ix_core_audit_event_user", "core_audit_event", ["user"])
    op.create_index("ix_core_audit_event_action", "core_audit_event", ["action"])


def downgrade() -> None:
    """Drop both core tables."""
    op.drop_table("core_audit_event")
    op.drop_table("core_host_command")
