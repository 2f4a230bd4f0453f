"""Interrupted ISO imports and stale staged uploads (issue 11, crash safety).

An upload is staged by the API as ``<data_dir>/uploads/<32 hex>.iso``; the ``iso.import`` task
moves it to ``.partial-<name>`` in the datastore's ISO folder, then to ``<name>``, then writes
its record. A crash of the worker in between left a ``.partial-`` file (or an ISO without a
record) that nobody owns; its intent lets recovery remove it. The staged upload itself is kept
for a retry; staged files older than ``isos.staged_max_age`` that no queued or running
``iso.import`` names are removed by the ``iso.clean-uploads`` periodic job (also run when a
worker starts), as are uploads the API left behind when it was killed mid-stream.
"""

from __future__ import annotations

import os
import re
import stat
import time
from typing import Any

from sqlmodel import Session, col, select

from bhype_core.registry import UndoAction

UNDO_IMPORT = "iso.undo_import"
UPLOAD_RE = re.compile(r"^[0-9a-f]{32}\.iso$")  # the only names the API stages (isos.upload_path)
DEFAULT_MAX_AGE = 24 * 3600.0


def undo_import(context: Any, datastore: str | None, name: str, existed: bool) -> str | None:
    """Remove the ``.partial-`` file an interrupted import left, and the ISO itself when the
    import moved it in but did not record it (and it was not there before)."""
    from bhype_core.isos import partial_path, record_path
    from bhype_core.vm.services import open_datastore

    store = open_datastore(context.runtime, datastore)
    target = store.iso_path(name)
    removed = []
    partial = partial_path(target)
    if _unlink_regular(partial):
        removed.append(str(partial))
    if not existed and not os.path.lexists(record_path(target)) and _unlink_regular(target):
        removed.append(str(target))
    return f"ISO import leftovers {', '.join(removed)}" if removed else None


def _unlink_regular(path: Any) -> bool:
    """Remove ``path`` if it is a regular file or a symlink (never followed); False if absent."""
    try:
        info = os.lstat(path)
    except FileNotFoundError:
        return False
    if not (stat.S_ISREG(info.st_mode) or stat.S_ISLNK(info.st_mode)):
        return False
    os.unlink(path)
    return True


def referenced_uploads(engine: Any) -> set[str]:
    """Upload ids named by ``iso.import`` tasks that are still queued or running."""
    from bhype_core.db.task_models import QUEUED, RUNNING, Task

    with Session(engine) as db:
        rows = db.exec(select(Task.arguments).where(col(Task.kind) == "iso.import",
                                                     col(Task.state).in_([QUEUED, RUNNING]))).all()
    return {str(arguments.get("upload")) for arguments in rows if isinstance(arguments, dict)}


def clean_uploads(runtime: Any, max_age: float, now: float | None = None) -> list[str]:
    """Remove staged uploads older than ``max_age`` seconds that no pending import names.

    Only names the API gives staged files (32 hex digits + ``.iso``) are considered, never
    followed (a symlink is removed as a link). Returns the paths removed.
    """
    from bhype_core.isos import uploads_dir

    directory = uploads_dir(runtime)
    if not directory.is_dir():
        return []
    now = time.time() if now is None else now
    wanted = referenced_uploads(runtime.engine)
    removed = []
    for entry in sorted(os.scandir(directory), key=lambda item: item.name):
        if not UPLOAD_RE.match(entry.name) or entry.name[:-4] in wanted:
            continue
        info = entry.stat(follow_symlinks=False)
        if now - info.st_mtime < max_age:
            continue
        if _unlink_regular(entry.path):
            removed.append(entry.path)
    return removed


def clean_uploads_job(context: Any) -> dict[str, Any]:
    """Periodic job ``iso.clean-uploads``: :func:`clean_uploads` with ``isos.staged_max_age``."""
    from bhype_core.isos import iso_settings

    max_age = float(getattr(iso_settings(context.runtime), "staged_max_age", DEFAULT_MAX_AGE))
    removed = clean_uploads(context.runtime, max_age)
    for path in removed:
        context.log(f"removed stale staged upload {path}")
    return {"removed": removed}


UNDO_ACTIONS = (UndoAction(UNDO_IMPORT, undo_import, "remove what an interrupted iso.import left"),)
