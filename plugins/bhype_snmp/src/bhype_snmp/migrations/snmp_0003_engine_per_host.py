"""snmp: one engine ID per host and role (group hosts share the database, issue 22), with the
moment its snmpEngineBoots last grew (the start of its snmpEngineTime).

Revision ID: snmp_0003
Revises: snmp_0002
Create Date: 2026-12-08
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision: str = "snmp_0003"
down_revision: str | Sequence[str] | None = "snmp_0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Spelled out, not imported from the models: a migration must not change when models do.
TIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    """snmp_engine gets ``host`` (empty on the rows made before: the first host that asks for
    a role adopts its row, so a single host keeps its engine IDs) and ``booted``; only the
    first row of each role is kept (the one that was always used), so (role, host) is unique."""
    with op.batch_alter_table("snmp_engine") as batch:
        batch.add_column(sa.Column("host", sa.String(length=63), nullable=False, server_default=""))
        batch.add_column(sa.Column("booted", TIME, nullable=True))
    connection = op.get_bind()
    rows = connection.execute(sa.text("SELECT id, role FROM snmp_engine ORDER BY id")).all()
    seen: set[str] = set()
    for row_id, role in rows:
        if role in seen:
            connection.execute(sa.text("DELETE FROM snmp_engine WHERE id = :id"), {"id": row_id})
        seen.add(role)
    with op.batch_alter_table("snmp_engine") as batch:
        batch.create_unique_constraint("uq_snmp_engine_role_host", ["role", "host"])


def downgrade() -> None:
    """Drop the constraint and the two columns (every host's row stays; the first is used)."""
    with op.batch_alter_table("snmp_engine") as batch:
        batch.drop_constraint("uq_snmp_engine_role_host", type_="unique")
        batch.drop_column("booted")
        batch.drop_column("host")
