"""Run one rsync transfer through the runner: progress while it runs, cancel, its ``--stats``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from bhype_core.errors import CommandCancelled, CommandError
from bhype_core.tasks.context import Cancelled
from bhype_core.transfer.progress import TransferProgress, parse_rsync_progress
from bhype_core.transfer.rsync_exit import describe_exit
from bhype_core.transfer.rsync_stats import RsyncStats, parse_rsync_stats

ProgressHandler = Callable[[TransferProgress], object]
CancelCheck = Callable[[], bool]


class TransferFailed(CommandError):
    """rsync (or a ``zfs send | receive``) failed; ``reason`` says what its exit status means
    (rsync(1) "EXIT VALUES") and ``stderr_tail`` what it printed."""

    code = "transfer_failed"


def run_rsync(
    runner: Any,
    argv: Sequence[str],
    *,
    on_progress: ProgressHandler | None = None,
    cancel: CancelCheck | None = None,
    timeout: float | None = None,
    env: Mapping[str, str] | None = None,
) -> RsyncStats:
    """Run an rsync argv (see :func:`~bhype_core.transfer.rsync_argv.rsync_argv`, with
    ``progress`` and ``stats``) and return its ``--stats`` figures.

    :param on_progress: called with each ``--info=progress2`` line as it comes.
    :param cancel: asked a few times a second (``context.cancel_requested``); when true, rsync's
        process group is stopped and :class:`~bhype_core.tasks.Cancelled` is raised.
    :param timeout: seconds for the whole run (default the runner's).
    :param env: added to rsync's environment (``RSYNC_PASSWORD`` with a local runner only:
        an SSH runner would put it into the remote command line).
    :raises TransferFailed: rsync exited non-zero (the meaning of its status in ``reason``).
    :raises Cancelled: ``cancel`` answered true.
    """
    if env and "RSYNC_PASSWORD" in env and getattr(runner, "target", "local") != "local":
        raise ValueError("RSYNC_PASSWORD would be visible in the ssh command line: use --password-file")

    def on_line(stream: str, line: str) -> None:
        if stream != "stdout":  # progress2 lines come on stdout; stderr is kept for the error
            return
        found = parse_rsync_progress(line)
        if found is not None and on_progress is not None:
            on_progress(found)

    try:
        result = runner.run(list(argv), on_line=on_line, cancel=cancel, timeout=timeout, check=False, env=env)
    except CommandCancelled as exc:
        raise Cancelled(f"rsync cancelled after {exc.duration:.1f}s") from exc
    if result.returncode != 0:
        raise TransferFailed(result.argv, result.returncode, result.stderr, result.duration,
                             reason=f"rsync exited {result.returncode}: {describe_exit(result.returncode)}",
                             stdout=result.stdout[-4000:])
    try:
        return parse_rsync_stats(result.stdout)
    except ValueError:
        return RsyncStats()  # a run without --stats
