"""hostops_update: the host update workflow's runs.

Revision ID: hostops_update_0001
Revises:
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "hostops_update_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("hostops_update",)
depends_on: str | Sequence[str] | None = None

# Spelled out, not imported from the models: a migration must not change when models do.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
JSON = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")  # as JSONText


def upgrade() -> None:
    """Create hostops_update_run."""
    op.create_table(
        "hostops_update_run",
        sa.Column("id", ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("task_id", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=255), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("step", sa.String(length=32), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("plan", JSON, nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.Column("steps", JSON, nullable=False),
        sa.Column("created", TIME, nullable=False),
        sa.Column("updated", TIME, nullable=False),
        mysql_charset="utf8mb4",
    )
    op.create_index("ix_hostops_update_run_task_id", "hostops_update_run", ["task_id"])
    op.create_index("ix_hostops_update_run_state", "hostops_update_run", ["state"])


def downgrade() -> None:
    """Drop hostops_update_run."""
    op.drop_index("ix_hostops_update_run_state", table_name="hostops_update_run")
    op.drop_index("ix_hostops_update_run_task_id", table_name="hostops_update_run")
    op.drop_table("hostops_update_run")
