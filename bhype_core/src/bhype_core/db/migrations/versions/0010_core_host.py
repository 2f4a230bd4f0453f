"""Several hosts, one bHype (issue 22): core_host, and the owning host of each task, VM and switch.

Existing rows get ``host = ''``: they belong to the single host that ran bHype so far, and the
first worker to register after the upgrade adopts them under its name
(:func:`bhype_core.hosts.registry.adopt_unowned`).

Revision ID: core_0010
Revises: core_0009
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "core_0010"
down_revision: str | Sequence[str] | None = "core_0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out, not imported from the models (see core_0001).
TIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
JSON_TEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")
OWNED = ("core_task", "core_vm", "core_switch")


def upgrade() -> None:
    """Create core_host; add ``host`` (indexed, default '') to core_task, core_vm, core_switch."""
    op.create_table(
        "core_host",
        sa.Column("name", sa.String(length=63), primary_key=True, nullable=False),
        sa.Column("address", sa.String(length=255), nullable=False),
        sa.Column("platform", sa.String(length=32), nullable=False),
        sa.Column("hypervisor", sa.String(length=32), nullable=False),
        sa.Column("capacity", JSON_TEXT, nullable=False),
        sa.Column("versions", JSON_TEXT, nullable=False),
        sa.Column("task_kinds", JSON_TEXT, nullable=False),
        sa.Column("registered", TIME, nullable=False),
        sa.Column("last_seen", TIME, nullable=False),
        mysql_charset="utf8mb4",
    )
    for table in OWNED:
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("host", sa.String(length=63), nullable=False, server_default=""))
            batch.create_index(f"ix_{table}_host", ["host"])


def downgrade() -> None:
    """Drop the ``host`` columns and core_host."""
    for table in OWNED:
        with op.batch_alter_table(table) as batch:
            batch.drop_index(f"ix_{table}_host")
            batch.drop_column("host")
    op.drop_table("core_host")
