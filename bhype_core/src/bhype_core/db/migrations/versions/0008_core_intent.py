"""Crash safety (issue 11): core_task_intent (the undo journal) and host commands recorded at start.

Revision ID: core_0008
Revises: core_0007
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "core_0008"
down_revision: str | Sequence[str] | None = "core_0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out, not imported from the models (see core_0001).
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
JSON_TEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


def upgrade() -> None:
    """Create core_task_intent; add state and command_id to core_host_command."""
    op.create_table(
        "core_task_intent",
        sa.Column("id", ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("task_id", sa.String(length=36), nullable=False),
        sa.Column("action", sa.String(length=128), nullable=False),
        sa.Column("description", sa.String(length=1000), nullable=False),
        sa.Column("arguments", JSON_TEXT, nullable=False),
        sa.Column("created", TIME, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        mysql_charset="utf8mb4",
    )
    op.create_index("ix_core_task_intent_task_id", "core_task_intent", ["task_id"])
    with op.batch_alter_table("core_host_command") as batch:
        batch.add_column(sa.Column("state", sa.String(length=16), nullable=False, server_default="finished"))
        batch.add_column(sa.Column("command_id", sa.String(length=32), nullable=True))
        batch.create_index("ix_core_host_command_state", ["state"])
        batch.create_index("ix_core_host_command_command_id", ["command_id"])


def downgrade() -> None:
    """Drop core_task_intent and the new core_host_command columns."""
    with op.batch_alter_table("core_host_command") as batch:
        batch.drop_index("ix_core_host_command_command_id")
        batch.drop_index("ix_core_host_command_state")
        batch.drop_column("command_id")
        batch.drop_column("state")
    op.drop_index("ix_core_task_intent_task_id", table_name="core_task_intent")
    op.drop_table("core_task_intent")
