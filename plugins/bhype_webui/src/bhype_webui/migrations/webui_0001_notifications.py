"""webui: notifications per user and each user's read marker.

Revision ID: webui_0001
Revises:
Create Date: 2025-03-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "webui_0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = ("webui",)
depends_on: str | Sequence[str] | None = None

# Spelled out, not imported from the models: a migration must not change when models do.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
JSON_TEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


def upgrade() -> None:
    """Create webui_notification and webui_notification_seen."""
    op.create_table(
        "webui_notification",
        sa.Column("id", ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("recipient", sa.String(length=255), nullable=True),
        sa.Column("kind", sa.String(length=64), nullable=False),
        sa.Column("severity", sa.String(length=16), nullable=False),
        sa.Column("message", sa.Text(), nullable=False),
        sa.Column("subject", sa.String(length=255), nullable=True),
        sa.Column("data", JSON_TEXT, nullable=False),
        sa.Column("time", TIME, nullable=False),
        mysql_charset="utf8mb4",
    )
    op.create_index("ix_webui_notification_recipient_id", "webui_notification", ["recipient", "id"])
    op.create_index("ix_webui_notification_time", "webui_notification", ["time"])
    op.create_table(
        "webui_notification_seen",
        sa.Column("username", sa.String(length=255), primary_key=True, nullable=False),
        sa.Column("last_read_id", ID, nullable=False),
        sa.Column("updated", TIME, nullable=False),
        mysql_charset="utf8mb4",
    )


def downgrade() -> None:
    """Drop both tables."""
    op.drop_table("webui_notification_seen")
    op.drop_table("webui_notification")
