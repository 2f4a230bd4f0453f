"""Run one local process like :func:`~bhype_core.host.process.run_process`, handing each line of
its stdout and stderr to a callback as it arrives (an installer's output in a task log while it
runs), and still capturing both outputs whole for the :class:`~bhype_core.host.process.Result`."""

from __future__ import annotations

import io
import queue
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from typing import IO, cast

from bhype_core.errors import CommandError
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
    on_line: OutputLineCallback,
) -> Result:
    """Wait for the started ``proc`` (own session, stdout/stderr pipes), calling ``on_line`` in
    this thread for every line as it comes, in arrival order. On timeout the process group gets
    SIGTERM, then SIGKILL after ``kill_grace``, and :class:`CommandError` carries the partial
    output. An exception from ``on_line`` kills the group and propagates."""
    lines: queue.Queue[object] = queue.Queue()
    captured: dict[str, list[bytes]] = {"stdout": [], "stderr": []}
    readers = [threading.Thread(target=_drain, args=(name, getattr(proc, name), captured[name], lines), daemon=True)
               for name in ("stdout", "stderr")]
    for reader in readers:
        reader.start()
    if input is not None:
        threading.Thread(target=_feed, args=(proc, input), daemon=True).start()
    deadline = started + timeout
    open_streams = len(readers)
    timed_out = False
    try:
        while open_streams:
            left = deadline - time.monotonic()
            if left <= 0:
                timed_out = True
                break
            try:
                item = lines.get(timeout=left)
            except queue.Empty:
                continue
            if item is _DONE:
                open_streams -= 1
                continue
            name, line = cast("tuple[str, str]", item)
            on_line(name, line)
        if not timed_out:
            try:
                proc.wait(timeout=max(deadline - time.monotonic(), 0.001))
            except subprocess.TimeoutExpired:  # closed its outputs but kept running
                timed_out = True
        if timed_out:
            _kill(proc, kill_grace, readers)
    except BaseException:
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    out, err = (b"".join(captured[name]) for name in ("stdout", "stderr"))
    if timed_out:
        raise CommandError(shown, None, decode(err), time.monotonic() - started,
                           reason=f"timed out after {timeout:g}s", stdout=decode(out))
    return Result(argv=list(shown), returncode=proc.returncode, stdout=decode(out), stderr=decode(err),
                  stdout_bytes=out, stderr_bytes=err, duration=time.monotonic() - started)


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
