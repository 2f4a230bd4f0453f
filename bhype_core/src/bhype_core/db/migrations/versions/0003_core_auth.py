"""Core tables core_auth_session and core_api_token: browser sessions and API tokens (issue 3).

Revision ID: core_0003
Revises: core_0002
Create Date: 2025-01-03
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "core_0003"
down_revision: str | Sequence[str] | None = "core_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out, not imported from the models (see core_0001).
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    """Create core_auth_session and core_api_token with their indexes."""
    op.create_table(
        "core_auth_session",
        sa.Column("key", sa.String(length=64), primary_key=True, nullable=False),
        sa.Column("username", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("csrf_token", sa.String(length=64), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("last_seen_at", TIME, nullable=False),
        sa.Column("checked_at", TIME, nullable=False),
        sa.Column("remote_addr", sa.String(length=64), nullable=True),
        mysql_charset="utf8mb4",
    )
    op.create_index("ix_core_auth_session_username", "core_auth_session", ["username"])
    op.create_index("ix_core_auth_session_created_at", "core_auth_session", ["created_at"])
    op.create_index("ix_core_auth_session_last_seen_at", "core_auth_session", ["last_seen_at"])

    op.create_table(
        "core_api_token",
        sa.Column("id", ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("prefix", sa.String(length=16), nullable=False),
        sa.Column("created_at", TIME, nullable=False),
        sa.Column("expires_at", TIME, nullable=True),
        sa.Column("last_used_at", TIME, nullable=True),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("username", sa.String(length=255), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("checked_at", TIME, nullable=False),
        mysql_charset="utf8mb4",
    )
    op.create_index("ix_core_api_token_token_hash", "core_api_token", ["token_hash"], unique=True)
    op.create_index("ix_core_api_token_username", "core_api_token", ["username"])


def downgrade() -> None:
    """Drop both tables."""
    op.drop_table("core_api_token")
    op.drop_table("core_auth_session")
