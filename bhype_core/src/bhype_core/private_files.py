"""Secrets at rest: the data directory is private, the embedded database and queue files 0600.

The embedded database holds sessions, task arguments and VNC passwords; the queue holds task
messages. Both processes open them (``bhype serve`` as the API user, ``bhype worker`` as
root), nobody else may. With root and an API account the data directory is
``root:<api group>`` 1770 (:func:`ensure_shared_data_dir`: the sticky bit keeps the API user
from swapping root's entries); with one account it is 0700 (:func:`ensure_private_dir`).
docs/configuration.md "The data directory is private" explains the choice.

A new SQLite file is created here, empty, exclusively and 0600, before SQLite opens it: SQLite
then creates its ``-wal``/``-shm``/``-journal`` side files with the main file's permissions
(and, as root, its owner: ``robust_open`` / ``findCreateFileMode`` in SQLite's unix VFS), so
no window exists where a side file is readable by others, whatever the process umask is.

Existing files and directories that are looser are tightened at start-up, each with a log
line; ``bhype doctor`` reports the same (see :func:`loose_paths`).
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bhype_core.safe_files import UnsafeFile, chmod_regular, open_dir

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
    that others could read; for ``bhype doctor``. Absent files are skipped; the shared layout
    (root-owned, 1770, see :func:`ensure_shared_data_dir`) counts as private."""
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
        shared = wanted == DIR_MODE and info.st_uid == 0 and mode == SHARED_DIR_MODE  # root + API group, sticky
        if stat.S_ISLNK(info.st_mode) or (mode & 0o077 and not shared):
            found.append((path, mode, wanted))
    return found


def secure_data_dir(settings: Settings) -> list[str]:
    """At start-up: make the data directory private; returns what was changed (each logged).

    Run by root with ``[auth] api_user`` an existing account (the production split), it is the
    shared layout of :func:`ensure_shared_data_dir`; otherwise (one account runs everything)
    0700 (:func:`ensure_private_dir`). A directory that cannot be changed is logged, not fatal
    (the doctor reports it); a planted entry (:class:`UnsafeFile`) stops start-up.
    """
    data_dir = Path(settings.core.data_dir)
    api = _api_account(settings)
    try:
        if os.geteuid() == 0 and api is not None:
            return ensure_shared_data_dir(data_dir, api, _sqlite_paths(settings))
        return ensure_private_dir(data_dir)
    except OSError as exc:
        log.warning("cannot make the data directory %s private: %s", data_dir, exc)
        return []


# Entries of the data directory that root (the worker) writes into: in the shared layout each
# must be root's own directory, made at start-up before the API user could claim the name.
ROOT_ENTRIES = {"run": 0o700, "workers": 0o700, "datastore": 0o750, "templates": 0o755}
SHARED_DIR_MODE = 0o1770


def ensure_shared_data_dir(data_dir: Path, api: tuple[int, int], sqlite_files: list[Path]) -> list[str]:
    """The production layout when root runs the worker and ``api`` = (uid, gid) runs the API:

    - the data directory is ``root:<api gid>``, mode 1770: the API user creates its files
      there (database, queue, their ``-wal``/``-shm``, ``uploads/``), others get nothing, and
      the sticky bit (sticky(7)/sticky(8)) stops the API user from renaming or removing root's
      entries, so it cannot swap one for a symlink;
    - ``run``, ``workers``, ``datastore`` and ``templates`` exist as root's directories (made
      now if absent, before the API user could claim the name);
    - the database and queue files exist, 0600, owned by the API user.

    :raises UnsafeFile: the data directory or a root entry is a symlink, not a directory, or
        (an entry) not root's: remove it and start again.
    """
    changes: list[str] = []
    data_dir.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.mkdir(data_dir, 0o700)
    except FileExistsError:
        pass
    fd = open_dir(data_dir)
    try:
        info = os.fstat(fd)
        wanted = (0, api[1], SHARED_DIR_MODE)
        if (info.st_uid, info.st_gid, stat.S_IMODE(info.st_mode)) != wanted:
            os.fchown(fd, 0, api[1])
            os.fchmod(fd, SHARED_DIR_MODE)
            changes.append(f"set {data_dir} to root:{api[1]} mode {SHARED_DIR_MODE:04o} "
                           f"(was {info.st_uid}:{info.st_gid} {stat.S_IMODE(info.st_mode):04o})")
        for name, mode in ROOT_ENTRIES.items():
            try:
                os.mkdir(name, mode, dir_fd=fd)
                changes.append(f"created {data_dir / name} (root's, {mode:04o})")
            except FileExistsError:
                entry = os.stat(name, dir_fd=fd, follow_symlinks=False)
                if not stat.S_ISDIR(entry.st_mode) or entry.st_uid != 0:
                    raise UnsafeFile(f"{data_dir / name} is not a directory owned by root (planted?): "
                                     "remove it and start again") from None
    finally:
        os.close(fd)
    for path in sqlite_files:
        try:
            created = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, FILE_MODE)
        except FileExistsError:
            continue
        try:
            os.fchmod(created, FILE_MODE)
            os.fchown(created, api[0], api[1])
        finally:
            os.close(created)
        changes.append(f"created {path} for the API user ({FILE_MODE:04o})")
    for change in changes:
        log.warning(change)
    return changes


def api_account(settings: Settings) -> tuple[int, int] | None:
    """(uid, gid) of ``[auth] api_user`` when that account exists and is not root: the
    production split, where the data directory and the console broker's socket
    (:mod:`bhype_core.consoles.broker`) belong to that user's primary group."""
    import pwd

    name = getattr(getattr(settings, "auth", None), "api_user", None)
    try:
        entry = pwd.getpwnam(name) if name else None
    except KeyError:
        return None
    return (entry.pw_uid, entry.pw_gid) if entry and entry.pw_uid != 0 else None


_api_account = api_account


def _sqlite_paths(settings: Settings) -> list[Path]:
    return sqlite_files(settings)


def sqlite_files(settings: Any) -> list[Path]:
    """The SQLite files bHype would open with ``settings``: the embedded database (unless
    ``core.database_url`` names a server) and the embedded queue (unless it is Redis)."""
    from sqlalchemy.engine import make_url

    files: list[Path] = []
    try:
        url = make_url(settings.core.effective_database_url)
    except Exception:  # a malformed URL is reported where the engine is built
        url = None
    database = url.database if url is not None and url.get_backend_name() == "sqlite" else None
    if database and database != ":memory:" and not database.startswith("file:"):
        files.append(Path(database).expanduser())
    backend = settings.queue.backend
    if backend == "sqlite" or (backend == "auto" and not settings.core.redis_url):
        files.append(Path(settings.queue.sqlite_path or Path(settings.core.data_dir) / "queue.sqlite3"))
    return files
