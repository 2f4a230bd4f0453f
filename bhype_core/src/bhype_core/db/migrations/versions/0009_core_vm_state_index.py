"""Fast paths (issue 15): an index on core_vm.state, so the state-file watcher's query of the
VMs that are not stopped (every 2 s) reads the index, not 10,000 rows with their specs.

Revision ID: core_0009
Revises: core_0008
Create Date: 2026-12-07
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "core_0009"
down_revision: str | Sequence[str] | None = "core_0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Index core_vm.state."""
    op.create_index("ix_core_vm_state", "core_vm", ["state"])


def downgrade() -> None:
    """Drop the index."""
    op.drop_index("ix_core_vm_state", table_name="core_vm")
