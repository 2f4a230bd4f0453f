"""Adopting an existing disk image file in place (a hard link), for directory datastores.

A hard link (link(2)) makes the same inode reachable under the datastore's name: not one byte
is copied, the guest's data stays in its blocks, and the old name (e.g. vm-bhyve's
``<vm_dir>/<vm>/disk0.img``) keeps working for a way back. link(2) cannot cross file systems
(EXDEV): that case is refused with what to do instead, never turned into a copy.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from bhype_core.errors import Conflict, ValidationErrors


def _source_info(source: Path) -> os.stat_result:
    try:
        info = os.lstat(source)
    except FileNotFoundError:
        raise ValidationErrors([("source", f"{source} does not exist")]) from None
    if not stat.S_ISREG(info.st_mode):
        # A symlink or device is never adopted: root would otherwise follow a planted link.
        raise ValidationErrors([("source", f"{source} is not a regular file (symlinks and devices are refused)")])
    return info


def link_in_place(source: Path, target: Path, datastore: str) -> os.stat_result:
    """Hard-link regular file ``source`` at ``target`` (which must not exist); returns the
    inode's stat.

    :raises ValidationErrors: ``source`` is missing, not a regular file, or on another file
        system than the datastore (path ``source``).
    :raises Conflict: ``target`` exists.
    """
    info = _source_info(source)
    try:
        os.link(source, target, follow_symlinks=False)
    except FileExistsError:
        raise Conflict(f"{target} already exists") from None
    except OSError as exc:
        if exc.errno == errno.EXDEV:
            raise ValidationErrors([("source", f"{source} is on another file system than datastore {datastore} "
                                               f"({target.parent}): it cannot be adopted without copying; configure "
                                               "a directory datastore on the same file system")]) from None
        raise
    linked = os.lstat(target)
    if (linked.st_dev, linked.st_ino) != (info.st_dev, info.st_ino):  # replaced under us: give up
        os.unlink(target)
        raise Conflict(f"{source} changed while it was being adopted")
    return linked


def unlink_adopted(source: Path, target: Path) -> None:
    """Give an adopted file back: put it at ``source`` again if that name is gone (rename),
    else drop ``target`` only when it is the same inode as ``source``. Absent is fine."""
    try:
        mine = os.lstat(target)
    except FileNotFoundError:
        return
    try:
        theirs = os.lstat(source)
    except FileNotFoundError:
        os.rename(target, source)
        return
    if (mine.st_dev, mine.st_ino) != (theirs.st_dev, theirs.st_ino):
        raise Conflict(f"{target} is not the same file as {source}: left in place")
    os.unlink(target)
