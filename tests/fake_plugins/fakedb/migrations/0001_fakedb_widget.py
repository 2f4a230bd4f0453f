"""fakedb: the widget table.

Revision ID: fakedb_0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "fakedb_0001"
down_revision = None
branch_labels = ("fakedb",)
depends_on = "core_0001"  # the foreign key needs core_host_command

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "fakedb_widget",
        sa.Column("id", ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("host_command_id", ID, sa.ForeignKey("core_host_command.id"), nullable=True),
        sa.UniqueConstraint("name"),
        mysql_charset="utf8mb4",
    )


def downgrade() -> None:
    op.drop_table("fakedb_widget")
