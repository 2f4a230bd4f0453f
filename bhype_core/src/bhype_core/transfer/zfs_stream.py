"""``zfs send | zfs receive`` through the runner's ``pipe``, with ``zfs send -v -P`` progress.

zfs-send(8): ``-P`` prints machine-parsable size estimates and, with ``-v``, a progress line
per second on stderr (parsed by :class:`~bhype_core.transfer.progress.ZfsSendProgress`); ``-i
@from`` sends the difference from an earlier snapshot; ``-c`` keeps blocks compressed;
``-t TOKEN`` resumes an interrupted receive. zfs-receive(8): ``-u`` does not mount what it
receives, ``-s`` keeps a resumable state after an interruption (its ``receive_resume_token``
property), ``-F`` rolls the target back to its newest snapshot first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bhype_core.errors import CommandCancelled, ValidationErrors
from bhype_core.tasks.context import Cancelled
from bhype_core.transfer.progress import ZfsSendProgress
from bhype_core.transfer.rsync_run import CancelCheck, ProgressHandler, TransferFailed


@dataclass(frozen=True)
class SendResult:
    """What a ``zfs send | zfs receive`` moved: stream bytes (``zfs send -P``'s ``size``
    estimate, which the per-second lines approach but, sampled once a second, never reach;
    the last per-second figure when there was no estimate), the estimate, and seconds."""

    bytes_sent: int
    estimated: int | None
    duration: float


def zfs_send_argv(snapshot: str, *, base: str | None = None, compressed: bool = True, raw: bool = False,
                  zfs: str = "zfs") -> list[str]:
    """``zfs send -v -P [-c|-w] [-i BASE] POOL/DS@SNAP`` (progress on stderr)."""
    if "@" not in snapshot or snapshot.startswith("-"):
        raise ValidationErrors([("snapshot", f"{snapshot!r} is not DATASET@SNAPSHOT")])
    argv = [zfs, "send", "-v", "-P"]
    if raw:
        argv.append("-w")
    elif compressed:
        argv.append("-c")
    if base is not None:
        if base.startswith("-"):
            raise ValidationErrors([("base", f"{base!r} is not a snapshot")])
        argv += ["-i", base]
    return [*argv, snapshot]


def zfs_resume_argv(token: str, *, zfs: str = "zfs") -> list[str]:
    """``zfs send -v -P -t TOKEN``: continue an interrupted resumable receive."""
    if not token or token.startswith("-") or any(c.isspace() for c in token):
        raise ValidationErrors([("token", "not a receive_resume_token")])
    return [zfs, "send", "-v", "-P", "-t", token]


def zfs_receive_argv(dataset: str, *, force: bool = False, resumable: bool = True, mount: bool = False,
                     zfs: str = "zfs") -> list[str]:
    """``zfs receive [-u] [-s] [-F] POOL/DS``."""
    if not dataset or dataset.startswith("-") or "@" in dataset:
        raise ValidationErrors([("dataset", f"{dataset!r} is not a dataset name")])
    argv = [zfs, "receive"]
    if not mount:
        argv.append("-u")
    if resumable:
        argv.append("-s")
    if force:
        argv.append("-F")
    return [*argv, dataset]


def send_receive(
    runner: Any,
    send_argv: Sequence[str],
    receive_argv: Sequence[str],
    *,
    to: Any = None,
    on_progress: ProgressHandler | None = None,
    cancel: CancelCheck | None = None,
    timeout: float | None = None,
) -> SendResult:
    """Run ``send_argv | receive_argv`` (the receive on runner ``to``, default ``runner``).

    ``receive_argv`` may itself be ``ssh … zfs receive …`` run locally (a backup host reached
    with a pinned key): the stream still never passes through this process.

    :raises TransferFailed: either side failed (the receiver's error first).
    :raises Cancelled: ``cancel`` answered true; both sides were stopped.
    """
    tracker = ZfsSendProgress()

    def on_line(line: str) -> None:
        found = tracker.feed(line)
        if found is not None and on_progress is not None:
            on_progress(found)

    try:
        result = runner.pipe(list(send_argv), list(receive_argv), to=to, timeout=timeout, check=False,
                             on_producer_line=on_line, cancel=cancel)
    except CommandCancelled as exc:
        raise Cancelled(f"zfs send | receive cancelled after {exc.duration:.1f}s") from exc
    if not result.ok:
        error = result.error()
        raise TransferFailed(error.argv, error.returncode, error.stderr, error.duration,
                             reason=f"zfs send | receive failed (exit {error.returncode})", stdout=error.stdout)
    done = tracker.bytes_total if tracker.bytes_total is not None else (tracker.last_bytes or 0)
    return SendResult(bytes_sent=done, estimated=tracker.bytes_total, duration=result.duration)
