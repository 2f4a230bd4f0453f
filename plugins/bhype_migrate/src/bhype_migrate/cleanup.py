"""``migrate.cleanup``: retry the peer clean-ups that rolled-back moves could not do (the peer
was down or unreachable), so a failed move never leaves files or a VM behind there for good."""

from __future__ import annotations

import json
from typing import Any

from sqlmodel import col, select

from bhype_core.plugin_api import BhypeError, TaskContext, session
from bhype_migrate.destination import open_destination
from bhype_migrate.models import MigrateMove
from bhype_migrate.settings import migrate_settings


def pending(runtime: Any) -> list[MigrateMove]:
    """Moves whose clean-up on the peer is still to do."""
    with session(runtime) as db:
        return list(db.exec(select(MigrateMove).where(col(MigrateMove.cleanup) != "")).all())


def retry_cleanups(context: TaskContext) -> dict[str, Any]:
    """Ask each peer again to discard what a rolled-back move left there."""
    done, failed = [], []
    timeout = migrate_settings(context.runtime).peer_task_timeout
    for row in pending(context.runtime):
        try:
            open_destination(context, row.peer).discard(json.loads(row.cleanup), timeout)
        except BhypeError as exc:
            failed.append(f"{row.vm_name} on {row.peer}: {exc.message}")
            continue
        with session(context.runtime, write=True) as db:
            stored = db.get(MigrateMove, row.id)
            if stored is not None:
                stored.cleanup = ""
                stored.detail = f"{stored.detail}; cleaned up on {row.peer} later".lstrip("; ")
                db.add(stored)
        context.log(f"cleaned up what the move of {row.vm_name} (task {row.task_id}) left on {row.peer}")
        done.append(f"{row.vm_name} on {row.peer}")
    return {"cleaned": done, "still_pending": failed}
