"""Block-aware copy of a zvol at a (held) snapshot into a sparse image file, on this host or on
another one: what moves a VM from ZFS to directory storage, and what a backup to a plain file
system can use for zvol disks.

A snapshot of a zvol has no device node by default (``snapdev=hidden``, zfsprops(7)), so the
snapshot is cloned (zfs-clone(8), ``volmode=dev``: a bare device, no partition scanning, no
GEOM tasting on FreeBSD) next to the pool's root, read with dd(1), and destroyed afterwards,
whatever happens: the clone shares every block with the snapshot and costs no space.

The reader is ``dd if=DEVICE bs=BLOCK`` on the host holding the pool; the writer ``dd
of=IMAGE bs=BLOCK conv=sparse`` wherever the image goes (through ``wrap``: ssh to a peer):
``conv=sparse`` (GNU and FreeBSD dd(1), busybox) seeks over output blocks that are all zero
instead of writing them, so the image holds only the zvol's written blocks. A trailing zero
run is seeked over too and never extends the file: ``truncate -s SIZE`` (truncate(1), FreeBSD
and GNU) gives the image the zvol's exact length. The two run through the runner's ``pipe``:
the bytes never pass through this process.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from bhype_core.errors import BhypeError, CommandCancelled, ValidationErrors
from bhype_core.tasks.context import Cancelled
from bhype_core.transfer.rsync_run import CancelCheck, TransferFailed

BLOCK = 1024 * 1024  # dd block size: the unit of "all zero, seek over it"
DEVICE_WAIT = 30.0  # seconds for the clone's device node (udev on Linux, devfs at once on FreeBSD)


@dataclass(frozen=True)
class ImageCopy:
    """A finished copy: the image's ``size`` (the zvol's) and the bytes it ``allocated``
    (``du -k``; much less than ``size`` for a sparsely written disk) and seconds taken."""

    size: int
    allocated: int
    duration: float


def _same(argv: list[str]) -> list[str]:
    return argv


def clone_name(snapshot: str) -> str:
    """``POOL/bhype-copy-<hex>``: the temporary clone of ``snapshot`` (outside bHype's layout,
    so no listing of a datastore ever shows it)."""
    if "@" not in snapshot or snapshot.startswith("-") or "/" not in snapshot.split("@")[0]:
        raise ValidationErrors([("snapshot", f"{snapshot!r} is not POOL/…/ZVOL@SNAPSHOT")])
    return f"{snapshot.split('/')[0]}/bhype-copy-{secrets.token_hex(4)}"


def clone_argv(snapshot: str, clone: str, zfs: str = "zfs") -> list[str]:
    """``zfs clone -o volmode=dev SNAPSHOT CLONE`` (zfs-clone(8), zfsprops(7))."""
    return [zfs, "clone", "-o", "volmode=dev", snapshot, clone]


def read_argv(device: str, block: int = BLOCK) -> list[str]:
    """``dd if=DEVICE bs=BLOCK`` (dd(1)); errors on stderr only."""
    return ["dd", f"if={device}", f"bs={block}"]


def write_argv(image: str, block: int = BLOCK) -> list[str]:
    """``dd of=IMAGE bs=BLOCK conv=sparse`` (dd(1): all-zero output blocks are seeked over)."""
    if not image.startswith("/"):
        raise ValidationErrors([("image", f"{image!r} is not an absolute path")])
    return ["dd", f"of={image}", f"bs={block}", "conv=sparse"]


def zvol_to_image(
    runner: Any,
    snapshot: str,
    image: str,
    size: int,
    *,
    to: Any = None,
    wrap: Callable[[list[str]], list[str]] = _same,
    zfs: str = "zfs",
    settle: Sequence[Sequence[str]] = (),
    cancel: CancelCheck | None = None,
    timeout: float | None = None,
) -> ImageCopy:
    """Copy zvol snapshot ``snapshot`` (``size`` bytes: its ``volsize``) into sparse file
    ``image`` on runner ``to`` (default ``runner``), each writer-side argv through ``wrap``.

    :param settle: commands that let the OS create the clone's device node (``udevadm
        settle`` on Linux; nothing on FreeBSD, where devfs adds it at once).
    :raises ValidationErrors: ``image``'s directory does not exist there (nothing ran).
    :raises TransferFailed: the reader or the writer failed (a partial image is removed).
    :raises Cancelled: ``cancel`` answered true (a partial image is removed).
    """
    started = time.monotonic()
    target = to if to is not None else runner
    folder = image.rsplit("/", 1)[0] or "/"
    write_argv(image)  # an absolute path, else ValidationErrors before anything runs
    if target.run(wrap(["test", "-d", folder]), check=False).returncode != 0:
        # Checked first: a writer failing at once would leave the reader (over SSH) waiting.
        raise ValidationErrors([("image", f"{folder} is not a directory where the image goes")])
    clone = clone_name(snapshot)
    runner.run(clone_argv(snapshot, clone, zfs))
    try:
        device = f"/dev/zvol/{clone}"
        _wait_for_device(runner, device, settle)
        try:
            result = runner.pipe(read_argv(device), wrap(write_argv(image)), to=to, timeout=timeout, check=False,
                                 cancel=cancel)
        except CommandCancelled as exc:
            target.run(wrap(["rm", "-f", "--", image]), check=False)
            raise Cancelled(f"zvol copy cancelled after {exc.duration:.1f}s") from exc
        if not result.ok:
            target.run(wrap(["rm", "-f", "--", image]), check=False)
            error = result.error()
            raise TransferFailed(error.argv, error.returncode, error.stderr, error.duration,
                                 reason=f"copying {snapshot} to {image} failed (exit {error.returncode})")
        target.run(wrap(["truncate", "-s", str(int(size)), "--", image]))
        used = target.run(wrap(["du", "-k", "--", image])).stdout.split()
    finally:
        runner.run([zfs, "destroy", clone], check=False)
    return ImageCopy(size=int(size), allocated=int(used[0]) * 1024 if used else 0,
                     duration=time.monotonic() - started)


def _wait_for_device(runner: Any, device: str, settle: Sequence[Sequence[str]]) -> None:
    deadline = time.monotonic() + DEVICE_WAIT
    while True:
        for command in settle:
            runner.run(list(command), check=False)
        if runner.run(["test", "-b", device], check=False).returncode == 0:
            return
        if time.monotonic() > deadline:
            raise BhypeError(f"zvol device {device} did not appear within {DEVICE_WAIT:g}s")
        time.sleep(0.2)
