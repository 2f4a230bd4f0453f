"""The move journal (table ``migrate_move``): one row per move from this host and the step it
reached, read by the start veto (a VM being moved or moved away is not started here) and by
the plan (one move of a VM at a time)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlmodel import col, select

from bhype_core.plugin_api import session
from bhype_migrate.models import MigrateMove

# States in which the source copy must not run here: a move is under way, the target has the
# VM, or the source was kept as a stopped, marked copy.
HOLDING = ("stopping", "transferring", "registered", "started", "kept")
FINAL = ("done", "kept", "rolled_back", "failed")


def open_move(runtime: Any, uuid: str, exclude_task: str | None = None) -> MigrateMove | None:
    """The move that holds VM ``uuid`` here (see :data:`HOLDING`), if any."""
    with session(runtime) as db:
        query = select(MigrateMove).where(col(MigrateMove.vm_uuid) == uuid, col(MigrateMove.state).in_(HOLDING))
        rows = [row for row in db.exec(query).all() if row.task_id != exclude_task]
    return rows[-1] if rows else None


def move_of_task(runtime: Any, task_id: str) -> MigrateMove | None:
    """The journal row of move task ``task_id``."""
    with session(runtime) as db:
        return db.exec(select(MigrateMove).where(col(MigrateMove.task_id) == task_id)).first()


def begin(runtime: Any, task_id: str, vm: str, uuid: str, peer: str, mode: str, transport: str) -> MigrateMove:
    """A new journal row (state ``stopping``) for move task ``task_id``."""
    row = MigrateMove(task_id=task_id, vm_name=vm, vm_uuid=uuid, peer=peer, mode=mode, transport=transport,
                      state="stopping")
    with session(runtime) as db:
        db.add(row)
    return row


def set_state(runtime: Any, task_id: str, state: str, **fields: Any) -> None:
    """Record that move task ``task_id`` reached ``state`` (and ``fields``)."""
    with session(runtime, write=True) as db:
        row = db.exec(select(MigrateMove).where(col(MigrateMove.task_id) == task_id)).first()
        if row is None:
            return
        row.state = state
        for name, value in fields.items():
            setattr(row, name, value)
        if state in FINAL:
            row.finished = datetime.now(UTC)
        db.add(row)


def moves(runtime: Any, limit: int = 200) -> list[dict[str, Any]]:
    """The latest moves from this host, newest first."""
    with session(runtime) as db:
        rows = db.exec(select(MigrateMove).order_by(col(MigrateMove.id).desc()).limit(limit)).all()
    return [row.model_dump(mode="json") for row in rows]
