"""hostops: rsync daemon modules and users, check findings and check runs.

Revision ID: hostops_0001
Revises:
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "hostops_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("hostops",)
depends_on: str | Sequence[str] | None = None

# Spelled out, not imported from the models: a migration must not change when models do.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
JSON = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


def upgrade() -> None:
    """Create hostops_rsync_module, hostops_rsync_user, hostops_finding, hostops_check_run."""
    op.create_table(
        "hostops_rsync_module",
        sa.Column("id", ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=63), nullable=False, unique=True),
        sa.Column("path", sa.String(length=1024), nullable=False),
        sa.Column("comment", sa.String(length=255), nullable=False),
        sa.Column("read_only", sa.Boolean(), nullable=False),
        sa.Column("hosts_allow", JSON, nullable=False),
        sa.Column("auth_users", JSON, nullable=False),
        sa.Column("uid", sa.String(length=32), nullable=False),
        sa.Column("gid", sa.String(length=32), nullable=False),
        mysql_charset="utf8mb4",
    )
    op.create_table(
        "hostops_rsync_user",
        sa.Column("id", ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False, unique=True),
        sa.Column("password", sa.Text(), nullable=False),
        mysql_charset="utf8mb4",
    )
    op.create_table(
        "hostops_finding",
        sa.Column("id", ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False, unique=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("source", sa.String(length=32), nullable=False),
        sa.Column("package", sa.String(length=255), nullable=False),
        sa.Column("version", sa.String(length=128), nullable=False),
        sa.Column("title", sa.String(length=1024), nullable=False),
        sa.Column("data", JSON, nullable=False),
        sa.Column("raw_output", JSON, nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("notified_digest", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("first_seen", TIME, nullable=False),
        sa.Column("last_seen", TIME, nullable=False),
        sa.Column("resolved_at", TIME, nullable=True),
        sa.Column("dismissed_until", TIME, nullable=True),
        sa.Column("dismissed_by", sa.String(length=64), nullable=False),
        mysql_charset="utf8mb4",
    )
    op.create_table(
        "hostops_check_run",
        sa.Column("id", ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("started", TIME, nullable=False),
        sa.Column("finished", TIME, nullable=True),
        sa.Column("checks", JSON, nullable=False),
        sa.Column("opened", sa.Integer(), nullable=False),
        sa.Column("resolved", sa.Integer(), nullable=False),
        mysql_charset="utf8mb4",
    )


def downgrade() -> None:
    """Drop the plugin's tables."""
    for table in ("hostops_check_run", "hostops_finding", "hostops_rsync_user", "hostops_rsync_module"):
        op.drop_table(table)
