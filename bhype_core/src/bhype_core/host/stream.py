"""One local process whose output is read line by line as it comes, and that can be cancelled.

:func:`~bhype_core.host.process.run_process` waits for a command and hands back its output at
the end; a transfer (rsync ``--info=progress2``) must show progress while it runs and stop when
its task is cancelled. This module runs one argv in its own session (a timeout or a cancel
kills the whole group, e.g. rsync's ssh child), hands each stdout line to ``on_line`` as it
arrives (``\\r``-redrawn lines count as lines) and polls ``cancel`` a few times a second.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

from bhype_core.errors import CommandCancelled, CommandError
from bhype_core.host.pdeathsig import die_with_parent
from bhype_core.host.pipeline import CancelCheck, LineCallback, _Reader, _signal_group, _stop, wait_or_cancel
from bhype_core.host.process import DEFAULT_KILL_GRACE, Result, decode

__all__ = ["CancelCheck", "CommandCancelled", "run_streaming"]


def run_streaming(
    argv: list[str],
    *,
    timeout: float,
    env: dict[str, str] | None,
    cwd: str | None,
    on_line: LineCallback | None,
    cancel: CancelCheck | None = None,
    kill_grace: float = DEFAULT_KILL_GRACE,
    display_argv: list[str] | None = None,
) -> Result:
    """Run ``argv`` locally, delivering stdout lines to ``on_line`` while it runs.

    :param cancel: asked a few times a second; when it answers true the process group gets
        SIGTERM (SIGKILL after ``kill_grace``) and :class:`CommandCancelled` is raised.
    :param display_argv: the argv shown in results and errors (the SSH runner's remote command).
    :raises CommandError: not found, timed out; :class:`CommandCancelled` when cancelled.
    """
    shown = display_argv or argv
    started = time.monotonic()
    try:
        process = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=None if env is None else {**os.environ, **env}, cwd=cwd,
            # Own group: a timeout or cancel also stops the children (rsync's ssh, its receiver).
            start_new_session=True, preexec_fn=die_with_parent(),  # noqa: PLW1509
        )
    except FileNotFoundError:
        raise CommandError(shown, None, duration=time.monotonic() - started,
                           reason=f"command not found: {argv[0]}") from None
    except PermissionError as exc:
        raise CommandError(shown, None, duration=time.monotonic() - started,
                           reason=f"permission denied: {exc.filename or argv[0]}") from None
    assert process.stdout is not None and process.stderr is not None
    readers = [_Reader(process.stdout, on_line), _Reader(process.stderr)]
    for reader in readers:
        reader.start()
    try:
        outcome = wait_or_cancel([process], started + timeout, cancel)
        if outcome != "done":
            _stop([process], kill_grace)
    except BaseException:
        _signal_group(process.pid, signal.SIGKILL)
        process.wait()
        raise
    for reader in readers:
        reader.join(timeout=kill_grace)
    out, err = (decode(reader.data()) for reader in readers)
    duration = time.monotonic() - started
    if outcome == "timeout":
        raise CommandError(shown, None, err, duration, reason=f"timed out after {timeout:g}s", stdout=out)
    if outcome == "cancelled":
        raise CommandCancelled(shown, None, err, duration, reason="cancelled", stdout=out)
    return Result(argv=list(shown), returncode=process.returncode, stdout=out, stderr=err,
                  stdout_bytes=readers[0].data(), stderr_bytes=readers[1].data(), duration=duration)
