"""fakedb_broken: creates a table, then runs invalid SQL.

Revision ID: fakedb_broken_0001
Revises:
Create Date: 2025-01-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "fakedb_broken_0001"
down_revision = None
branch_labels = ("fakedb_broken",)
depends_on = "core_0001"


def upgrade() -> None:
    op.create_table("fakedb_broken_half", sa.Column("id", sa.Integer(), primary_key=True))
    op.execute("INSERT INTO fakedb_broken_missing_table (id) VALUES (1)")


def downgrade() -> None:
    op.drop_table("fakedb_broken_half")
