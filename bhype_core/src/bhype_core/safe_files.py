"""Handling files the unprivileged API user could have planted, without following them.

The worker runs as root. Whatever it takes from a place the API user (or a VM owner) can
write — staged uploads, a user's ``~/.ssh/authorized_keys``, files in a directory that user
owns — may be a symlink to a root-only file, a hard link to one, a FIFO that blocks ``open``
forever, or a device. So such a file is opened once, with ``O_NOFOLLOW`` (open(2): a symlink
as the last component fails with ``ELOOP``) and ``O_NONBLOCK`` (a FIFO then opens at once
instead of waiting for a writer), checked with ``fstat`` to be a regular file with one link
and the expected owner, and every later step (chmod, chown, copy, rename check) goes through
that descriptor. A rename re-checks afterwards that the name it moved is still the inode it
checked (the source directory is writable by someone else, so the name may have been
swapped between the check and the rename); a mismatch is undone and fails.

Each refusal is a :class:`UnsafeFile` saying "… is not a regular file" (or what else is
wrong), so the task fails clearly and nothing is touched.
"""

from __future__ import annotations

import errno
import fcntl
import os
import stat
from collections.abc import Iterable
from pathlib import Path

from bhype_core.errors import BhypeError

COPY_CHUNK = 1 << 20


class UnsafeFile(BhypeError):
    """A file the worker was to handle is a symlink, FIFO, device, directory, hard link or
    belongs to someone unexpected: it was left alone."""

    code = "unsafe_file"
    http_status = 409


def open_regular(
    path: str | os.PathLike[str],
    flags: int = os.O_RDONLY,
    *,
    mode: int = 0o600,
    owners: Iterable[int] | None = None,
    single_link: bool = False,
    dir_fd: int | None = None,
    label: str | os.PathLike[str] | None = None,
) -> int:
    """Open ``path`` without following a symlink and return the descriptor of a regular file.

    :param flags: ``os.O_*`` access flags (``O_CREAT``/``O_EXCL``/``O_TRUNC`` allowed);
        ``O_NOFOLLOW``, ``O_NONBLOCK`` and ``O_CLOEXEC`` are always added, ``O_NONBLOCK`` is
        cleared again once the file is known to be regular. ``O_TRUNC`` is applied only after
        the checks (``ftruncate``), so a refused file is never emptied.
    :param mode: permissions of a file created by ``O_CREAT``.
    :param owners: uids the file may belong to (``None``: anyone).
    :param single_link: refuse a file with more than one hard link (a hard link to someone
        else's file looks regular and owned by them; FreeBSD allows linking others' files unless
        ``security.bsd.hardlink_check_uid`` is set).
    :param dir_fd: resolve ``path`` relative to this directory descriptor (openat(2)).
    :param label: how messages name the file (default ``path``; give the full path with ``dir_fd``).
    :raises UnsafeFile: a symlink, not a regular file, several links or an unexpected owner.
    :raises FileNotFoundError: nothing there (and no ``O_CREAT``).
    """
    label = path if label is None else label
    truncate = bool(flags & os.O_TRUNC)
    flags &= ~os.O_TRUNC
    try:
        fd = os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode, dir_fd=dir_fd)
    except OSError as exc:
        # ELOOP: a symlink (open(2)); FreeBSD answers EMLINK for O_NOFOLLOW on a symlink (open(2)).
        # ENXIO: a FIFO opened O_WRONLY|O_NONBLOCK with no reader. EISDIR: a directory.
        if exc.errno in (errno.ELOOP, errno.EMLINK, errno.ENXIO, errno.EISDIR):
            raise UnsafeFile(f"{label} is not a regular file (symlink, FIFO or directory): left alone") from None
        raise
    try:
        check_regular(fd, label, owners=owners, single_link=single_link)
        fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~os.O_NONBLOCK)
        if truncate:
            os.ftruncate(fd, 0)
    except BaseException:
        os.close(fd)
        raise
    return fd


def check_regular(
    fd: int, path: str | os.PathLike[str], *, owners: Iterable[int] | None = None, single_link: bool = False
) -> os.stat_result:
    """``fstat(fd)`` if it is a regular file meeting the ``owners``/``single_link`` rules.

    :raises UnsafeFile: naming ``path`` and what is wrong.
    """
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        raise UnsafeFile(f"{path} is not a regular file: left alone")
    if single_link and info.st_nlink != 1:
        raise UnsafeFile(f"{path} has {info.st_nlink} hard links (expected 1): left alone")
    allowed = None if owners is None else set(owners)
    if allowed is not None and info.st_uid not in allowed:
        raise UnsafeFile(f"{path} belongs to uid {info.st_uid}, expected {sorted(allowed)}: left alone")
    return info


def same_entry(fd: int, path: str | os.PathLike[str], *, dir_fd: int | None = None) -> bool:
    """Whether the directory entry ``path`` (not followed) is the file open as ``fd``."""
    try:
        entry = os.stat(path, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (entry.st_dev, entry.st_ino) == (mine.st_dev, mine.st_ino)


def read_bytes(
    path: str | os.PathLike[str],
    limit: int,
    *,
    owners: Iterable[int] | None = None,
    dir_fd: int | None = None,
    label: str | os.PathLike[str] | None = None,
) -> bytes:
    """The content of regular file ``path`` (not followed), at most ``limit`` bytes.

    :raises UnsafeFile: see :func:`open_regular`, or the file is longer than ``limit``.
    """
    fd = open_regular(path, owners=owners, dir_fd=dir_fd, label=label)
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise UnsafeFile(f"{path if label is None else label} is longer than {limit} bytes: left alone")
    return data


def copy_fd(source: int, target: int) -> int:
    """Copy everything from descriptor ``source`` (from its start) to ``target``; returns bytes."""
    os.lseek(source, 0, os.SEEK_SET)
    done = 0
    while chunk := os.read(source, COPY_CHUNK):
        view = memoryview(chunk)
        while view:
            view = view[os.write(target, view) :]
        done += len(chunk)
    return done


def open_dir(path: str | os.PathLike[str]) -> int:
    """A descriptor of directory ``path``, refusing a symlink as its last component.

    :raises UnsafeFile: ``path`` is a symlink or not a directory.
    """
    try:
        return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.EMLINK, errno.ENOTDIR):
            raise UnsafeFile(f"{path} is not a directory (symlink or file): left alone") from None
        raise


def adopt(source: Path, target: Path, *, mode: int, owners: Iterable[int] | None = None) -> None:
    """Move ``source`` (in a directory someone else can write) to ``target`` (in one only the
    worker writes), owned by the worker and with permissions ``mode``; ``target`` must not exist.

    The source's directory is opened without following it, the source opened relative to it
    without following and checked (regular, one link, owned by ``owners``, by default the
    directory's owner: whoever staged it), given to the worker's uid/gid and ``mode`` through
    the descriptor, then linked to ``target``; if the name linked turns out not to be that inode
    (swapped in between), the new entry is removed and the move fails. Across file systems the
    bytes are copied from the descriptor into a file created exclusively at ``target``. The
    source name is removed last, and only while it still is that file.

    :raises UnsafeFile: the source is not a single-link regular file of an expected owner.
    :raises FileExistsError: ``target`` exists.
    """
    dir_fd = open_dir(source.parent)
    try:
        allowed = [os.fstat(dir_fd).st_uid] if owners is None else owners
        fd = open_regular(source.name, owners=allowed, single_link=True, dir_fd=dir_fd, label=source)
        try:
            if os.geteuid() == 0:
                os.fchown(fd, 0, 0)  # the uploader keeps no write access through ownership
            os.fchmod(fd, mode)
            if os.fstat(fd).st_dev == os.stat(target.parent).st_dev:
                _link_checked(fd, dir_fd, source, target)
            else:
                _copy_into(fd, target, mode)
            if same_entry(fd, source.name, dir_fd=dir_fd):
                os.unlink(source.name, dir_fd=dir_fd)
        finally:
            os.close(fd)
    finally:
        os.close(dir_fd)


def _link_checked(fd: int, dir_fd: int, source: Path, target: Path) -> None:
    # link(2) instead of rename(2): it fails when the target exists (no silent replace) and,
    # on Linux (linkat without AT_SYMLINK_FOLLOW), never follows a symlink at the source name;
    # POSIX leaves following open, so the result is checked either way.
    os.link(source.name, target, src_dir_fd=dir_fd, follow_symlinks=False)
    if not same_entry(fd, target):
        os.unlink(target)
        raise UnsafeFile(f"{source} was replaced while it was being moved: left alone")


def _copy_into(fd: int, target: Path, mode: int) -> None:
    out = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode)
    try:
        copy_fd(fd, out)
        os.fchmod(out, mode)  # the umask may have narrowed the mode given to open
        os.fsync(out)
    except BaseException:
        os.close(out)
        os.unlink(target)
        raise
    os.close(out)


def chmod_regular(path: str | os.PathLike[str], mode: int) -> bool:
    """Set ``mode`` on regular file ``path`` through a descriptor (never through a symlink);
    returns whether the mode changed.

    :raises UnsafeFile: ``path`` is not a regular file.
    """
    fd = open_regular(path)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) == mode:
            return False
        os.fchmod(fd, mode)
        return True
    finally:
        os.close(fd)


def write_atomic(
    path: str | os.PathLike[str], data: bytes, *, mode: int = 0o644, owner: tuple[int, int] | None = None
) -> None:
    """Replace file ``path`` with ``data`` in one step: readers see the old or the new content,
    never a half-written file, and a crash leaves the old one.

    The parent directory is opened without following a symlink (:func:`open_dir`), a temporary
    file is created exclusively in it (``O_EXCL|O_NOFOLLOW``, so nothing planted is reused) with
    ``mode`` (set through the descriptor, whatever the umask: ``0o600`` for secrets) and
    ``owner`` (uid, gid) when given, written and fsynced, then renamed over ``path`` relative to
    that directory (rename(2) replaces a symlink at ``path`` itself, never its target) and the
    directory fsynced. On any failure the temporary file is removed and ``path`` is untouched.

    :raises UnsafeFile: the parent directory is a symlink or not a directory, or ``path`` is a
        directory.
    """
    target = Path(path)
    dir_fd = open_dir(target.parent)
    temporary = f".{target.name}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    try:
        try:
            if stat.S_ISDIR(os.stat(target.name, dir_fd=dir_fd, follow_symlinks=False).st_mode):
                raise UnsafeFile(f"{target} is a directory: left alone")
        except FileNotFoundError:
            pass
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600,
                     dir_fd=dir_fd)
        try:
            try:
                if owner is not None:
                    os.fchown(fd, *owner)
                os.fchmod(fd, mode)
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view):]
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(temporary, target.name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except BaseException:
            try:
                os.unlink(temporary, dir_fd=dir_fd)
            except FileNotFoundError:
                pass
            raise
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
