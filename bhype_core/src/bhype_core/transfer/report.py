"""Turn transfer progress into a task's progress bar and log lines (throttled)."""

from __future__ import annotations

import time
from typing import Any

from bhype_core.transfer.progress import TransferProgress
from bhype_core.transfer.rsync_run import ProgressHandler


def task_progress(context: Any, label: str, *, start: float = 0.0, span: float = 100.0,
                  interval: float = 5.0) -> ProgressHandler:
    """A handler for :func:`run_rsync`/:func:`send_receive` that maps a transfer's percent onto
    ``start``…``start + span`` of the task's progress (``context.progress``, at most once a
    second) and writes ``label: 1.2 GiB of 4.0 GiB, 85 MiB/s, 0:00:33 left`` to the task log
    every ``interval`` seconds (the API shows the progress message; the log keeps a trace)."""
    last = {"progress": 0.0, "log": 0.0}

    def handle(progress: TransferProgress) -> None:
        now = time.monotonic()
        done = progress.bytes_total is not None and progress.bytes_done >= progress.bytes_total
        if now - last["progress"] >= 1.0 or done:
            last["progress"] = now
            percent = min(100.0, start + span * progress.percent / 100.0)
            context.progress(percent, f"{label}: {progress.describe()}")
        if now - last["log"] >= interval:
            last["log"] = now
            context.log(f"{label}: {progress.describe()}")

    return handle
