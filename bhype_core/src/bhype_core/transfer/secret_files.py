"""Secrets at rest for transfers: daemon passwords and SSH private keys, 0600, worker only.

A secret is written with the core's :func:`~bhype_core.safe_files.write_atomic` (a temporary
file created exclusively with ``O_NOFOLLOW`` and mode 0600, in a 0700 directory opened without
following a symlink, then renamed over the final name: rename(2) replaces a symlink itself,
never its target). Readers open it with the core's safe file helpers (no
symlink followed). The path, never the content, goes into argv (``--password-file``,
``ssh -i``); see docs/architecture.md "Shared transfer code".
"""

from __future__ import annotations

import os
from pathlib import Path

from bhype_core.private_files import ensure_private_dir
from bhype_core.safe_files import read_bytes, write_atomic

SECRET_MODE = 0o600
MAX_SECRET = 64 * 1024  # a password or an OpenSSH private key is far smaller


def write_secret(path: str | os.PathLike[str], data: str | bytes) -> Path:
    """Store ``data`` at ``path`` as a 0600 file of this process's user (the worker: root).

    The parent directory is created 0700 (or tightened). A password gets no trailing newline
    added: rsync's ``--password-file`` reads the first line, ssh reads the key file whole.

    :returns: ``path`` as a :class:`Path`.
    """
    target = Path(path)
    payload = data.encode() if isinstance(data, str) else bytes(data)
    if len(payload) > MAX_SECRET:
        raise ValueError(f"a secret of {len(payload)} bytes is too large (at most {MAX_SECRET})")
    ensure_private_dir(target.parent)
    write_atomic(target, payload, mode=SECRET_MODE)
    return target


def read_secret(path: str | os.PathLike[str]) -> bytes:
    """A secret written by :func:`write_secret` (refuses symlinks, FIFOs and huge files)."""
    return read_bytes(path, MAX_SECRET, owners=[os.geteuid()])


def remove_secret(path: str | os.PathLike[str]) -> bool:
    """Delete a secret file; False if there was none."""
    try:
        os.unlink(path)
    except FileNotFoundError:
        return False
    return True
