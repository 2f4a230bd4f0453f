"""Block-range copy of a disk image to another host, checked block by block: the data path of
a warm move whose hypervisor tracks dirty blocks (``DIRTY_TRACKING``, issue 17).

A first copy sends every block holding data; each later one only the blocks a
:class:`~bhype_core.drivers.dirty.DirtyTracker` reported written. The sender
(:mod:`block_send`, on this host) and the receiver (:mod:`block_receive`, on the other host,
run by ``python3 -c`` through ssh: it needs nothing of bHype there) are joined by the runner's
``pipe``, so the bytes never pass through this process.

**Checks.** The sender hashes each block it read (SHA-256, 1 MiB blocks); the receiver hashes
each block as it reads it back after writing it; a difference fails the copy. Both sides keep
the per-block hashes across passes (:class:`BlockMap` here, a manifest file there, in
``.bhype-blocks/`` next to the image), so the offline window never re-reads a whole disk: the
image's digest (``blocks-sha256:``, :meth:`BlockMap.digest`) is computed from them, on the
target from its manifest (:func:`manifest_digest`). Correct because a block not reported
dirty since it was read has not changed since (the tracker's contract), and all-zero blocks
are left out on both sides (a hole here and written zeros there agree).
"""

from __future__ import annotations

import hashlib
import json
import os
import shlex
import stat
import struct
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bhype_core.errors import BhypeError, CommandCancelled
from bhype_core.tasks.context import Cancelled
from bhype_core.transfer.rsync_run import CancelCheck, TransferFailed

BLOCK = 1024 * 1024
PREFIX = "blocks-sha256:"
MANIFEST_DIR = ".bhype-blocks"
REMOTE_PYTHON = "python3"


def _same(argv: list[str]) -> list[str]:
    return argv


def manifest_path(image: str) -> str:
    """Where the receiver keeps ``image``'s per-block hashes: ``.bhype-blocks/NAME.json`` in
    the image's directory (left out of a move's file list and removed once verified)."""
    folder, name = os.path.split(image)
    return os.path.join(folder, MANIFEST_DIR, f"{name}.json")


def digest_of(size: int, block: int, hashes: dict[int, str]) -> str:
    """``blocks-sha256:`` + SHA-256 of the size, the block size and every non-zero block's
    offset and SHA-256, in offset order."""
    digest = hashlib.sha256(struct.pack(">QI", size, block))
    for offset in sorted(hashes):
        digest.update(struct.pack(">Q", offset))
        digest.update(bytes.fromhex(hashes[offset]))
    return PREFIX + digest.hexdigest()


@dataclass
class BlockMap:
    """This host's per-block SHA-256 of an image as last sent (zero blocks absent)."""

    size: int
    block: int = BLOCK
    hashes: dict[int, str] = field(default_factory=dict)

    def update(self, answer: dict[str, str | None]) -> None:
        for key, value in answer.items():
            if value is None:
                self.hashes.pop(int(key), None)
            else:
                self.hashes[int(key)] = value

    def digest(self) -> str:
        return digest_of(self.size, self.block, self.hashes)


def manifest_digest(image: Path) -> str | None:
    """The digest of ``image`` from the receiver's manifest (:func:`manifest_path`); ``None``
    when there is none or it was made for another length than the image has now. Opened
    without following a symlink."""
    try:
        fd = os.open(manifest_path(str(image)), os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except (FileNotFoundError, OSError):
        return None
    with os.fdopen(fd, encoding="utf-8") as handle:
        data = json.load(handle)
    info = os.lstat(image)
    if not stat.S_ISREG(info.st_mode) or data.get("size") != info.st_size:
        return None
    return digest_of(int(data["size"]), int(data["block"]),
                     {int(k): str(v) for k, v in (data.get("hashes") or {}).items()})


def receiver_argv(image: str, size: int, mode: int, python: str = REMOTE_PYTHON, block: int = BLOCK) -> list[str]:
    """``python3 -c <block_receive.py> IMAGE SIZE MODE MANIFEST BLOCK`` (python(1) ``-c``)."""
    if not image.startswith("/"):
        raise ValueError(f"{image!r} is not an absolute path")
    code = (Path(__file__).with_name("block_receive.py")).read_text(encoding="utf-8")
    return [python, "-c", code, image, str(int(size)), f"{mode & 0o7777:o}", manifest_path(image), str(block)]


def sender_argv(plan: str) -> list[str]:
    """This interpreter running :mod:`bhype_core.transfer.block_send` on ``plan``, by its path:
    it needs the standard library only, and importing the package would cost the offline
    window a few hundred milliseconds."""
    return [sys.executable, str(Path(__file__).with_name("block_send.py")), plan]


def ssh_wrap(ssh: Callable[..., list[str]]) -> Callable[[list[str]], list[str]]:
    """An argv wrapper for a host reached by ``ssh(command)``: the command quoted once
    (``shlex.join``) for the remote shell."""
    return lambda argv: ssh(shlex.join(argv))


@dataclass(frozen=True)
class BlockCopy:
    """One pass: ``blocks`` planned, ``sent`` data bytes, ``written`` bytes the receiver wrote."""

    blocks: int
    sent: int
    written: int
    seconds: float


def copy_blocks(
    runner: Any,
    image: str,
    target: str,
    blocks: list[int] | None,
    known: BlockMap,
    *,
    to: Any = None,
    wrap: Callable[[list[str]], list[str]] = _same,
    python: str = REMOTE_PYTHON,
    on_bytes: Callable[[int], object] | None = None,
    cancel: CancelCheck | None = None,
    timeout: float = 24 * 3600.0,
) -> BlockCopy:
    """Send ``blocks`` (offsets; ``None``: every block holding data, for a new target) of
    ``image`` here to ``target`` (on runner ``to``, each argv through ``wrap``), check every
    block's hash on both sides and record them in ``known``.

    :raises TransferFailed: either side failed, or a block read back differently there.
    :raises Cancelled: ``cancel`` answered true.
    """
    started = time.monotonic()
    info = os.lstat(image)
    if not stat.S_ISREG(info.st_mode):
        raise BhypeError(f"{image} is not a regular file")
    with tempfile.TemporaryDirectory(prefix="bhype-blocks-") as folder:
        plan, result = os.path.join(folder, "plan.json"), os.path.join(folder, "sent.json")
        with open(plan, "w", encoding="utf-8") as handle:
            json.dump({"image": image, "block": known.block, "blocks": blocks, "result": result}, handle)

        def line(text: str) -> None:
            if on_bytes is not None and text.startswith("SENT "):
                on_bytes(int(text.split()[1]))

        consumer = wrap(receiver_argv(target, info.st_size, info.st_mode, python, known.block))
        try:
            piped = runner.pipe(sender_argv(plan), consumer, to=to, timeout=timeout, check=False,
                                on_producer_line=line, cancel=cancel)
        except CommandCancelled as exc:
            raise Cancelled(f"block copy cancelled after {exc.duration:.1f}s") from exc
        if not piped.ok:
            error = piped.error()
            raise TransferFailed(error.argv[:3], error.returncode, error.stderr, error.duration,
                                 reason=f"copying blocks of {image} failed (exit {error.returncode})")
        with open(result, encoding="utf-8") as handle:
            sent: dict[str, str | None] = json.load(handle)
    try:
        answer = json.loads(piped.consumer.stdout)
        received: dict[str, str | None] = answer["hashes"]
    except (ValueError, KeyError, TypeError) as exc:
        raise BhypeError(f"the block receiver gave no hashes: {piped.consumer.stdout[-200:]!r}") from exc
    differ = sorted(int(k) for k in set(sent) | set(received) if sent.get(k, "") != received.get(k, ""))
    if differ:
        raise BhypeError(f"{len(differ)} block(s) of {image} read back differently on the target "
                         f"(first at offset {differ[0]})")
    known.size = info.st_size
    known.update(sent)
    data = sum(1 for value in sent.values() if value is not None)
    return BlockCopy(blocks=len(sent), sent=data * known.block, written=int(answer.get("written", 0)),
                     seconds=time.monotonic() - started)
