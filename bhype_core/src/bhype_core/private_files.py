"""Secrets at rest: the data directory is 0700, the embedded database and queue files 0600.

The embedded database holds sessions, task arguments and VNC passwords; the queue holds task
messages. Both processes open them (``bhype serve`` as the API user, ``bhype worker`` as
root), nobody else may: the data directory belongs to the account running ``bhype serve`` and
is 0700 (root reaches it anyway), and each SQLite file is 0600.

A new SQLite file is created here, empty, exclusively and 0600, before SQLite opens it: SQLite
then creates its ``-wal``/``-shm``/``-journal`` side files with the main file's permissions
(and, as root, its owner: ``robust_open`` / ``findCreateFileMode`` in SQLite's unix VFS), so
no window exists where a side file is readable by others, whatever the process umask is. A
file created by root in a directory owned by the API user is handed to that user, otherwise
the API could not open the database the worker made first.

Existing files and directories that are looser are tightened at start-up, each with a log
line; ``bhype doctor`` reports the same (see :func:`loose_paths`).
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING

from bhype_core.safe_files import chmod_regular, open_dir

if TYPE_CHECKING:
    from bhype_core.config import Settings

DIR_MODE = 0o700
FILE_MODE = 0o600
SIDE_SUFFIXES = ("-wal", "-shm", "-journal")

log = logging.getLogger("bhype.files")


def ensure_private_dir(path: Path) -> list[str]:
    """Create ``path`` 0700 (parents as the umask says), or tighten an existing one that others
    may enter; returns what was changed, each also logged.

    A directory with the sticky bit (``/tmp``) or not owned by this process's user (unless it
    is root) is shared by design and left alone.
    """
    path = Path(path)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.mkdir(path, DIR_MODE)
        except FileExistsError:
            pass  # made by the other process meanwhile: checked below
    fd = open_dir(path)
    try:
        info = os.fstat(fd)
        mode = stat.S_IMODE(info.st_mode)
        if not mode & 0o077 or mode & stat.S_ISVTX or os.geteuid() not in (0, info.st_uid):
            return []
        os.fchmod(fd, DIR_MODE)
    finally:
        os.close(fd)
    change = f"tightened {path} from {mode:04o} to {DIR_MODE:04o} (it holds the database and queue)"
    log.warning(change)
    return [change]


def ensure_private_sqlite(path: Path) -> list[str]:
    """Make sure SQLite file ``path`` and its side files are 0600: create it empty and 0600 when
    absent (owned by its directory's owner when root creates it), tighten what exists; returns
    what was changed, each also logged.

    :raises UnsafeFile: ``path`` or a side file is a symlink, FIFO or other non-regular file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    changes: list[str] = []
    if path.is_dir() and not path.is_symlink():
        return changes  # no database at all: SQLite's own open reports it (health, doctor)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
    except FileExistsError:
        pass
    else:
        try:
            os.fchmod(fd, FILE_MODE)  # whatever the umask
            owner = os.stat(path.parent)
            if os.geteuid() == 0 and owner.st_uid != 0:
                os.fchown(fd, owner.st_uid, owner.st_gid)
        finally:
            os.close(fd)
    for candidate in (path, *(path.with_name(path.name + suffix) for suffix in SIDE_SUFFIXES)):
        try:
            before = stat.S_IMODE(os.lstat(candidate).st_mode)
            if chmod_regular(candidate, FILE_MODE):
                change = f"tightened {candidate} from {before:04o} to {FILE_MODE:04o} (it may hold secrets)"
                log.warning(change)
                changes.append(change)
        except FileNotFoundError:
            continue
    return changes


def loose_paths(data_dir: Path, files: list[Path]) -> list[tuple[Path, int, int]]:
    """``(path, mode, wanted)`` for the data directory and each SQLite file (with side files)
    that others could read; for ``bhype doctor``. Absent files are skipped."""
    found: list[tuple[Path, int, int]] = []
    checks = [(Path(data_dir), DIR_MODE)]
    for path in files:
        checks += [(Path(path), FILE_MODE)]
        checks += [(Path(path).with_name(Path(path).name + suffix), FILE_MODE) for suffix in SIDE_SUFFIXES]
    for path, wanted in checks:
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            continue
        mode = stat.S_IMODE(info.st_mode)
        if stat.S_ISLNK(info.st_mode) or mode & 0o077:
            found.append((path, mode, wanted))
    return found


def secure_data_dir(settings: Settings) -> list[str]:
    """At start-up: the data directory 0700 (see :func:`ensure_private_dir`); a directory that
    cannot be changed is logged, not fatal (the doctor reports it)."""
    try:
        return ensure_private_dir(Path(settings.core.data_dir))
    except OSError as exc:
        log.warning("cannot make the data directory %s private: %s", settings.core.data_dir, exc)
        return []
