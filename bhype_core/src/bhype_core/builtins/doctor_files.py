"""The ``file-modes`` doctor check: the data directory, embedded database and queue are private.

The SQLite database holds sessions and VNC passwords, the queue task messages (issue 11):
the data directory must be 0700 and each file (with its ``-wal``/``-shm``/``-journal``) 0600.
``bhype serve`` and ``bhype worker`` tighten them at start-up; this check names what is loose
and the command that fixes it now.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from bhype_core.private_files import loose_paths
from bhype_core.registry import CheckResult

NAME = "private files"


def sqlite_files(settings: Any) -> list[Path]:
    """The SQLite files bHype would open with ``settings``: the embedded database (unless
    ``core.database_url`` names a server) and the embedded queue (unless it is Redis)."""
    files: list[Path] = []
    try:
        url = make_url(settings.core.effective_database_url)
    except Exception:  # a malformed URL is the database check's business
        url = None
    if url is not None and url.get_backend_name() == "sqlite" and url.database and url.database != ":memory:" \
            and not url.database.startswith("file:"):
        files.append(Path(url.database).expanduser())
    backend = settings.queue.backend
    if backend == "sqlite" or (backend == "auto" and not settings.core.redis_url):
        files.append(Path(settings.queue.sqlite_path or Path(settings.core.data_dir) / "queue.sqlite3"))
    return files


def check_file_modes(data_dir: Path, files: list[Path]) -> CheckResult:
    """Fails naming every path others could read, with the ``chmod`` that fixes it."""
    loose = loose_paths(data_dir, files)
    if not loose:
        return CheckResult(NAME, True, f"{data_dir} is 0700 and the database/queue files 0600")
    detail = "; ".join(f"{path} is {mode:04o} (wanted {wanted:04o})" for path, mode, wanted in loose)
    fix = " && ".join(f"chmod {wanted:o} {shlex.quote(str(path))}" for path, _, wanted in loose)
    return CheckResult(NAME, False, f"readable by other local users: {detail}",
                       f"{fix} (or restart bhype serve/worker: they tighten these at start-up)")


def run_file_modes(settings: Any) -> list[CheckResult]:
    """The ``file-modes`` doctor check."""
    return [check_file_modes(Path(settings.core.data_dir), sqlite_files(settings))]
