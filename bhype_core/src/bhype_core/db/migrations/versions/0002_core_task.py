"""Core tables core_task and core_task_log: the per-user task queue (issue 3).

Revision ID: core_0002
Revises: core_0001
Create Date: 2025-01-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "core_0002"
down_revision: str | Sequence[str] | None = "core_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out, not imported from the models (see core_0001).
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
JSON_TEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


def upgrade() -> None:
    """Create core_task (with its scheduling indexes) and core_task_log."""
    op.create_table(
        "core_task",
        sa.Column("id", sa.String(length=36), primary_key=True, nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=128), nullable=False),
        sa.Column("target", sa.String(length=255), nullable=False),
        sa.Column("arguments", JSON_TEXT, nullable=False),
        sa.Column("locks", JSON_TEXT, nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("progress", sa.Double(), nullable=False),
        sa.Column("progress_message", sa.String(length=1000), nullable=False),
        sa.Column("created", TIME, nullable=False),
        sa.Column("started", TIME, nullable=True),
        sa.Column("picked_up", TIME, nullable=True),
        sa.Column("finished", TIME, nullable=True),
        sa.Column("result", JSON_TEXT, nullable=True),
        sa.Column("error", JSON_TEXT, nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), nullable=False),
        sa.Column("retry_of", sa.String(length=36), nullable=True),
        sa.Column("worker_host", sa.String(length=255), nullable=True),
        sa.Column("worker_pid", sa.Integer(), nullable=True),
        sa.Column("worker_id", sa.String(length=64), nullable=True),
        sa.Column("dispatch_token", sa.String(length=36), nullable=True),
        mysql_charset="utf8mb4",
    )
    op.create_index("ix_core_task_owner", "core_task", ["owner"])
    op.create_index("ix_core_task_kind", "core_task", ["kind"])
    op.create_index("ix_core_task_state", "core_task", ["state"])
    op.create_index("ix_core_task_created", "core_task", ["created"])
    op.create_index("ix_core_task_retry_of", "core_task", ["retry_of"])
    op.create_index("ix_core_task_state_created", "core_task", ["state", "created"])
    op.create_index("ix_core_task_owner_started", "core_task", ["owner", "started"])

    op.create_table(
        "core_task_log",
        sa.Column("id", ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("task_id", sa.String(length=36), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("time", TIME, nullable=False),
        sa.Column("level", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["task_id"], ["core_task.id"], ondelete="CASCADE"),
        sa.UniqueConstraint("task_id", "seq", name="uq_core_task_log_task_seq"),
        mysql_charset="utf8mb4",
    )


def downgrade() -> None:
    """Drop both task tables (the log first: it refers to the tasks)."""
    op.drop_table("core_task_log")
    op.drop_table("core_task")
