"""Shared transfer code: rsync and ``zfs send | receive`` argv, progress, stats, secrets, host keys.

Used by backups (``bhype_backup``) and moves (``bhype_migrate``) through
:mod:`bhype_core.plugin_api`; docs/architecture.md "Shared transfer code" says what is where.
"""

from __future__ import annotations

from bhype_core.transfer.host_keys import fingerprint, keyscan_argv, parse_known_hosts, pin_host_key
from bhype_core.transfer.progress import TransferProgress, ZfsSendProgress, parse_rsync_progress
from bhype_core.transfer.report import task_progress
from bhype_core.transfer.rsync_argv import SshTransport, daemon_url, path_arg, rsync_argv, ssh_destination
from bhype_core.transfer.rsync_exit import RsyncExit, describe_exit
from bhype_core.transfer.rsync_run import TransferFailed, run_rsync
from bhype_core.transfer.rsync_stats import RsyncStats, parse_rsync_stats
from bhype_core.transfer.secret_files import read_secret, remove_secret, write_secret
from bhype_core.transfer.zfs_replica import (
    ZfsEnd,
    destroy_snapshot,
    destroy_tree,
    estimate,
    parse_send_size,
    replica_receive_argv,
    replica_send_argv,
    same_snapshot,
    send_pass,
    take_snapshot,
)
from bhype_core.transfer.zfs_stream import (
    SendResult,
    send_receive,
    zfs_receive_argv,
    zfs_resume_argv,
    zfs_send_argv,
)
from bhype_core.transfer.zvol_copy import ImageCopy, zvol_to_image

__all__ = [
    "RsyncExit", "RsyncStats", "SendResult", "SshTransport", "TransferFailed", "TransferProgress", "ZfsSendProgress",
    "daemon_url", "describe_exit", "fingerprint", "keyscan_argv", "parse_known_hosts", "parse_rsync_progress",
    "parse_rsync_stats", "path_arg", "pin_host_key", "read_secret", "remove_secret", "rsync_argv", "run_rsync",
    "send_receive", "ssh_destination", "task_progress", "write_secret", "zfs_receive_argv", "zfs_resume_argv",
    "zfs_send_argv",
    # issue 17 (s7-migrate-zfs): dataset replication in passes, block-aware zvol copy
    "ImageCopy", "ZfsEnd", "destroy_snapshot", "destroy_tree", "estimate", "parse_send_size",
    "replica_receive_argv", "replica_send_argv", "same_snapshot", "send_pass", "take_snapshot", "zvol_to_image",
]  # fmt: skip
