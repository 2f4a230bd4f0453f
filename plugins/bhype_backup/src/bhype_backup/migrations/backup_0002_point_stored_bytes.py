"""backup: what a point added on its target (``backup_point.stored_bytes``).

Revision ID: backup_0002_stored_bytes
Revises: backup_0001
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "backup_0002_stored_bytes"
down_revision: str | Sequence[str] | None = "backup_0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add ``stored_bytes`` (0 for points made before: not known)."""
    op.add_column("backup_point", sa.Column("stored_bytes", sa.BigInteger(), nullable=False, server_default="0"))


def downgrade() -> None:
    """Drop ``stored_bytes``."""
    op.drop_column("backup_point", "stored_bytes")
