"""Reading a point back on its ZFS target: what ``backup.verify`` checks and what a restore onto
directory storage copies.

A point is the snapshot ``CHAIN@SNAP`` of every dataset of its chain; received datasets stay
unmounted and a zvol's snapshot has no device node (``snapdev=hidden``, zfsprops(7)). Rather
than mount the chain or change its properties (the next incremental receive needs it exactly
as it was received), each dataset is read through a temporary clone (zfs-clone(8)) at the
pool's root, ``POOL/bhype-read-<hex>``: ``readonly=on`` for the VM's file system, ``volmode=dev``
for a zvol (a bare device, no partition scanning). A clone shares every block with the snapshot,
costs no space, and is destroyed afterwards whatever happens.

Digests are computed on the target (``sha256 -q`` on FreeBSD, ``sha256sum`` elsewhere, chosen
by ``uname -s``), so verifying reads nothing across the network but the digests.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager

from bhype_backup import zfs_argv
from bhype_backup.zfs_target import ZfsTarget
from bhype_core.plugin_api import BhypeError

DEVICE_WAIT = 30.0  # seconds for a clone's device node (udev on Linux; devfs adds it at once)


class PointReader:
    """Point ``CHAIN@SNAP`` on ``remote``, read through temporary clones."""

    def __init__(self, remote: ZfsTarget, point_path: str) -> None:
        self.remote = remote
        self.chain, _, self.snapshot = point_path.partition("@")
        zfs_argv.check_snapshot(remote.dataset(point_path))
        self._platform: str | None = None

    def _clone_name(self) -> str:
        return f"{self.remote.root.split('/')[0]}/bhype-read-{secrets.token_hex(4)}"

    @contextmanager
    def files(self) -> Iterator[str]:
        """The mountpoint of a read-only clone of the VM's dataset at the point."""
        clone = self._clone_name()
        self.remote.run(zfs_argv.clone(self.remote.dataset(f"{self.chain}@{self.snapshot}"), clone,
                                       {"readonly": "on"}), timeout=300)
        try:
            values = self.remote.run(zfs_argv.get_values(["mounted", "mountpoint"], clone)).stdout.split()
            mounted, mountpoint = values[:2]
            if mounted != "yes":
                self.remote.run(["zfs", "mount", clone])  # zfs-mount(8)
            if not mountpoint.startswith("/"):
                raise BhypeError(f"target {self.remote.name}: the clone {clone} has no mountpoint ({mountpoint})")
            yield mountpoint
        finally:
            self.remote.run(zfs_argv.destroy_dataset(clone), check=False, timeout=300)

    @contextmanager
    def device(self, stored: str) -> Iterator[str]:
        """The device node of a clone of zvol ``CHAIN/stored`` at the point."""
        clone = self._clone_name()
        self.remote.run(zfs_argv.clone(self.remote.dataset(f"{self.chain}/{stored}@{self.snapshot}"), clone,
                                       {"volmode": "dev"}), timeout=300)
        try:
            device = f"/dev/zvol/{clone}"
            deadline = time.monotonic() + DEVICE_WAIT
            while self.remote.run(["test", "-b", device], check=False).returncode != 0:
                if time.monotonic() > deadline:
                    raise BhypeError(f"target {self.remote.name}: {device} did not appear within {DEVICE_WAIT:g}s")
                time.sleep(0.2)
            yield device
        finally:
            self.remote.run(zfs_argv.destroy_dataset(clone), check=False, timeout=300)

    def sha256(self, path: str) -> str:
        """The sha256 of ``path`` on the target, computed there."""
        if self._platform is None:
            self._platform = self.remote.run(["uname", "-s"]).stdout.strip()  # uname(1)
        result = self.remote.run(zfs_argv.sha256_argv(self._platform, path), timeout=24 * 3600)
        return zfs_argv.parse_sha256(result.stdout)
