"""The data path of a move: the VM's directory to the peer with rsync over SSH, through the
core's shared transfer code (:mod:`bhype_core.transfer`, the same backups use), with progress
(bytes, rate, ETA) and cancel.

rsync(1): ``--sparse`` keeps unwritten parts of an image unwritten on the peer; ``--mkpath``
makes the incoming directory; ``--no-specials --no-devices`` leave a stopped VM's stale
sockets behind; ``--delete`` makes a later pass of a warm move drop files the VM removed;
``--timeout`` ends a transfer whose link is gone instead of hanging.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bhype_core.plugin_api import RsyncStats, TransferProgress, path_arg, rsync_argv, run_rsync

IO_TIMEOUT = 30  # seconds without data before rsync gives up (a cut link)


def move_argv(peer: Any, source_dir: str, destination: str, *, delta: bool) -> list[str]:
    """The rsync argv copying ``source_dir``'s contents to ``destination`` on the peer."""
    return rsync_argv([path_arg(source_dir, contents=True)], peer.remote(path_arg(destination, contents=True)),
                      ssh=peer.transport, delta=delta, inplace=True, sparse=True, io_timeout=IO_TIMEOUT,
                      extra=["--mkpath", "--no-specials", "--no-devices", "--delete"])


def send_files(context: Any, peer: Any, source_dir: str, destination: str, *, delta: bool,
               on_progress: Callable[[TransferProgress], object]) -> RsyncStats:
    """Copy the VM directory ``source_dir`` to ``destination`` on the peer; rsync's
    ``--stats`` (:class:`RsyncStats`: ``literal_bytes`` changed data, ``bytes_sent`` on the wire).

    :raises Cancelled: the task was cancelled (rsync is stopped).
    :raises TransferFailed: rsync failed (link cut, disk full on the peer …), with its meaning.
    """
    return run_rsync(context.runner, move_argv(peer, source_dir, destination, delta=delta),
                     on_progress=on_progress, cancel=context.cancel_requested, timeout=24 * 3600)
