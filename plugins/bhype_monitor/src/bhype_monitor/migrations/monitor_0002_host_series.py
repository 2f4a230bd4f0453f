"""monitor: host series keyed by the group host's name (issue 22).

The host's history was the series ``host``; in a group every host records its own, as
``host:<name>``. The column widens to 80 (a host name is up to 63 characters) and the old rows
become ``host:`` (unowned): the first host whose sampler starts, the former single host, adopts
them (``bhype_monitor.sampler.adopt_single_host_history``), as the core's first registered
host adopts the VMs of a single-host install.

Revision ID: monitor_0002
Revises: monitor_0001
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "monitor_0002"
down_revision: str | Sequence[str] | None = "monitor_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Widen ``series`` and make the host rows unowned (``host:``)."""
    with op.batch_alter_table("monitor_sample") as batch:  # SQLite rebuilds the table; MariaDB alters it
        batch.alter_column("series", existing_type=sa.String(length=48), type_=sa.String(length=80),
                           existing_nullable=False)
    op.execute("UPDATE monitor_sample SET series = 'host:' WHERE series = 'host'")


def downgrade() -> None:
    """Back to one unnamed host series: the named hosts' history is dropped (their rows would
    clash), only the unowned rows become ``host`` again."""
    op.execute("DELETE FROM monitor_sample WHERE series LIKE 'host:%' AND series <> 'host:'")
    op.execute("UPDATE monitor_sample SET series = 'host' WHERE series = 'host:'")
    with op.batch_alter_table("monitor_sample") as batch:
        batch.alter_column("series", existing_type=sa.String(length=80), type_=sa.String(length=48),
                           existing_nullable=False)
