"""snmp: SNMPv3 users of the read-only agent, and the agent's own engine ID and boots.

Revision ID: snmp_0002
Revises: snmp_0001
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "snmp_0002"
down_revision: str | Sequence[str] | None = "snmp_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out, not imported from the models: a migration must not change when models do.
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    """snmp_engine gets role (the existing row is the sender's: ``notify``) and boots; create
    snmp_agent_user."""
    with op.batch_alter_table("snmp_engine") as batch:
        batch.add_column(sa.Column("role", sa.String(length=8), nullable=False, server_default="notify"))
        batch.add_column(sa.Column("boots", sa.Integer(), nullable=False, server_default="0"))
    op.create_table(
        "snmp_agent_user",
        sa.Column("id", ID, primary_key=True, autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=32), nullable=False, unique=True),
        sa.Column("auth_protocol", sa.String(length=8), nullable=False),
        sa.Column("auth_key", sa.Text(), nullable=False),
        sa.Column("priv_protocol", sa.String(length=8), nullable=False),
        sa.Column("priv_key", sa.Text(), nullable=False),
        sa.Column("created", TIME, nullable=False),
        mysql_charset="utf8mb4",
    )


def downgrade() -> None:
    """Drop snmp_agent_user and the two columns."""
    op.drop_table("snmp_agent_user")
    with op.batch_alter_table("snmp_engine") as batch:
        batch.drop_column("boots")
        batch.drop_column("role")
