"""The one local streaming implementation behind ``Runner.run(on_line=…, cancel=…)``: each stdout
and stderr line goes to a callback as it arrives (installer output, rsync progress), a cancel check
stops the process group, and both outputs are still captured whole for the
:class:`~bhype_core.host.process.Result` (or the :class:`~bhype_core.errors.CommandError`)."""

from __future__ import annotations

import io
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import IO, cast

from bhype_core.errors import CommandCancelled, CommandError
from bhype_core.host.pipeline import POLL_SECONDS, CancelCheck
from bhype_core.host.process import Result, _signal_group, decode

#: ``on_line(stream, line)``: ``stream`` is ``"stdout"`` or ``"stderr"``; ``line`` is decoded text
#: without its line end ("\n", "\r\n", or a progress bar's lone "\r").
OutputLineCallback = Callable[[str, str], object]

_DONE = object()


def _drain(name: str, stream: IO[bytes], chunks: list[bytes], lines: queue.Queue[object]) -> None:
    """Read ``stream`` to its end into ``chunks``, putting each complete line on ``lines``."""
    pending = b""
    reader = cast("io.BufferedReader", stream)
    try:
        for chunk in iter(lambda: reader.read1(65536), b""):
            chunks.append(chunk)
            pending += chunk
            *complete, pending = pending.replace(b"\r\n", b"\n").replace(b"\r", b"\n").split(b"\n")
            for line in complete:
                lines.put((name, decode(line)))
        if pending:
            lines.put((name, decode(pending)))
    except (OSError, ValueError):  # the pipe was closed under us after a kill: keep what arrived
        pass
    finally:
        lines.put(_DONE)


def _feed(proc: subprocess.Popen[bytes], data: bytes) -> None:
    """Write stdin from a thread (a command that talks before reading must not block us)."""
    assert proc.stdin is not None
    try:
        proc.stdin.write(data)
        proc.stdin.close()
    except (BrokenPipeError, OSError):
        pass  # the command stopped reading: its exit status says what happened


def stream_process(
    proc: subprocess.Popen[bytes],
    *,
    shown: list[str],
    started: float,
    timeout: float,
    input: bytes | None,
    kill_grace: float,
    on_line: OutputLineCallback | None,
    cancel: CancelCheck | None = None,
) -> Result:
    """Wait for the started ``proc`` (own session, stdout/stderr pipes), calling ``on_line`` in
    this thread for every line as it comes, in arrival order, and asking ``cancel`` every
    :data:`POLL_SECONDS`. On timeout or cancel the process group gets SIGTERM, then SIGKILL
    after ``kill_grace``, and :class:`CommandError` (:class:`CommandCancelled` on cancel)
    carries the partial output. An exception from ``on_line`` kills the group and propagates."""
    lines: queue.Queue[object] = queue.Queue()
    captured: dict[str, list[bytes]] = {"stdout": [], "stderr": []}
    readers = [threading.Thread(target=_drain, args=(name, getattr(proc, name), captured[name], lines), daemon=True)
               for name in ("stdout", "stderr")]
    for reader in readers:
        reader.start()
    if input is not None:
        threading.Thread(target=_feed, args=(proc, input), daemon=True).start()
    watch = _Watch(started + timeout, cancel)
    open_streams = len(readers)
    outcome = "done"
    try:
        while open_streams and outcome == "done":
            outcome = watch.outcome()
            if outcome != "done":
                break
            try:
                item = lines.get(timeout=watch.wait_for())
            except queue.Empty:
                continue
            if item is _DONE:
                open_streams -= 1
            elif on_line is not None:
                name, line = cast("tuple[str, str]", item)
                on_line(name, line)
        while outcome == "done" and proc.poll() is None:  # closed its outputs but kept running
            try:
                proc.wait(timeout=watch.wait_for())
            except subprocess.TimeoutExpired:
                outcome = watch.outcome()
        if outcome != "done":
            _kill(proc, kill_grace, readers)
    except BaseException:
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    out, err = (b"".join(captured[name]) for name in ("stdout", "stderr"))
    duration = time.monotonic() - started
    if outcome == "timeout":
        raise CommandError(shown, None, decode(err), duration, reason=f"timed out after {timeout:g}s",
                           stdout=decode(out))
    if outcome == "cancelled":
        raise CommandCancelled(shown, None, decode(err), duration, reason="cancelled", stdout=decode(out))
    return Result(argv=list(shown), returncode=proc.returncode, stdout=decode(out), stderr=decode(err),
                  stdout_bytes=out, stderr_bytes=err, duration=duration)


class _Watch:
    """The deadline and the cancel check; ``cancel`` is asked at most every :data:`POLL_SECONDS`
    (it may read the task table), however fast the lines come."""

    def __init__(self, deadline: float, cancel: CancelCheck | None) -> None:
        self.deadline = deadline
        self.cancel = cancel
        self.next_ask = time.monotonic() + POLL_SECONDS

    def outcome(self) -> str:
        """``"timeout"`` past the deadline, ``"cancelled"`` when ``cancel`` says so, else ``"done"``."""
        now = time.monotonic()
        if now >= self.deadline:
            return "timeout"
        if self.cancel is not None and now >= self.next_ask:
            self.next_ask = now + POLL_SECONDS
            if self.cancel():
                return "cancelled"
        return "done"

    def wait_for(self) -> float:
        """Seconds to block before looking at the deadline (and ``cancel``) again."""
        left = max(self.deadline - time.monotonic(), 0.001)
        return left if self.cancel is None else min(left, POLL_SECONDS)


def _kill(proc: subprocess.Popen[bytes], grace: float, readers: list[threading.Thread]) -> None:
    """SIGTERM the group, SIGKILL it after ``grace``, and give the readers ``grace`` to reach the
    end of the pipes. A process outside the group (one that called setsid) may hold them open:
    its reader threads (daemons) are then left behind and the output read so far is reported."""
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()
    for reader in readers:
        reader.join(timeout=grace)
