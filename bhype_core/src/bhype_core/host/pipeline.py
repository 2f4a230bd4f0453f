"""Two local processes joined by an OS pipe (``producer | consumer``) without a shell.

The data goes from one process to the other through the kernel; this process never holds it,
so a stream of any size costs no memory here. Each side runs in its own session (process
group), so a timeout kills whatever either side spawned. The runner (:meth:`Runner.pipe
<bhype_core.host.runner.Runner.pipe>`) decides *what* each side runs (the command itself, or
``ssh … -- command`` for a remote host); this module only runs the two local argv lists.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, cast

from bhype_core.errors import CommandCancelled, CommandError
from bhype_core.host.pdeathsig import die_with_parent
from bhype_core.host.process import DEFAULT_KILL_GRACE, Result, _signal_group, decode

LineCallback = Callable[[str], object]
CancelCheck = Callable[[], bool]
POLL_SECONDS = 0.2  # how often a running command asks its ``cancel`` check


@dataclass
class PipeResult:
    """How both sides of ``producer | consumer`` ended (each a :class:`Result`)."""

    producer: Result
    consumer: Result
    duration: float
    #: the producer was stopped because the consumer had failed (its exit status is ours, not its own)
    producer_stopped: bool = False

    @property
    def ok(self) -> bool:
        """True when both sides exited with status 0."""
        return self.producer.ok and self.consumer.ok

    def error(self) -> CommandError:
        """The failure to report. When the consumer failed, its error comes first: a producer
        that then dies of a broken pipe is a consequence. Otherwise the producer's (a consumer
        complaining about a truncated stream is the consequence then)."""
        if not self.producer.ok and self.consumer.ok:
            return self.producer.error()
        if self.producer.ok:
            return self.consumer.error()
        first, second = self.consumer, self.producer
        if _died_of_broken_pipe(first):  # the consumer failed only because the producer did
            first, second = second, first
        stderr = first.stderr.rstrip()
        if second.stderr.strip():
            stderr += f"\n({second.argv[0]} exited {second.returncode}: {second.stderr.strip().splitlines()[-1]})"
        return CommandError(first.argv, first.returncode, stderr, self.duration, stdout=first.stdout)

    def assert_success(self) -> PipeResult:
        """Return ``self`` if both sides succeeded, else raise :meth:`error`."""
        if not self.ok:
            raise self.error()
        return self


def _died_of_broken_pipe(result: Result) -> bool:
    return result.returncode in (-signal.SIGPIPE, 128 + signal.SIGPIPE)


class _Reader(threading.Thread):
    """Drains one pipe into memory (stdout of the consumer, stderr of either side), handing
    complete lines to ``on_line`` as they arrive."""

    def __init__(self, stream: IO[bytes], on_line: LineCallback | None = None) -> None:
        super().__init__(daemon=True)
        self.stream = stream
        self.on_line = on_line
        self.chunks: list[bytes] = []

    def run(self) -> None:
        pending = b""
        stream = cast("io.BufferedReader", self.stream)  # Popen(..., PIPE) pipes are buffered readers
        for chunk in iter(lambda: stream.read1(65536), b""):
            self.chunks.append(chunk)
            if self.on_line is None:
                continue
            pending += chunk
            # zfs send -v ends its progress lines with "\n"; tools drawing a bar use "\r".
            *lines, pending = pending.replace(b"\r", b"\n").split(b"\n")
            for line in lines:
                if line:
                    self._deliver(line)
        if pending and self.on_line is not None:
            self._deliver(pending)

    def _deliver(self, line: bytes) -> None:
        try:
            assert self.on_line is not None
            self.on_line(decode(line))
        except Exception:  # noqa: BLE001 (a progress callback must not stop the draining)
            pass

    def data(self) -> bytes:
        return b"".join(self.chunks)


def _start(argv: list[str], shown: list[str], started: float, **streams: object) -> subprocess.Popen[bytes]:
    try:
        # Each side dies with the worker too (issue 11): no zfs send left writing into a dead pipe.
        return subprocess.Popen(argv, start_new_session=True, preexec_fn=die_with_parent(),  # noqa: PLW1509
                                **streams)  # type: ignore[call-overload, no-any-return]
    except FileNotFoundError:
        reason = f"command not found: {argv[0]}"
    except PermissionError as exc:
        reason = f"permission denied: {exc.filename or argv[0]}"
    raise CommandError(shown, None, duration=time.monotonic() - started, reason=reason)


def run_pipeline(
    producer: list[str],
    consumer: list[str],
    *,
    timeout: float,
    kill_grace: float = DEFAULT_KILL_GRACE,
    shown: tuple[list[str], list[str]] | None = None,
    on_producer_line: LineCallback | None = None,
    cancel: CancelCheck | None = None,
) -> PipeResult:
    """Run ``producer | consumer`` locally and wait for both.

    :param timeout: seconds for the whole pipeline; then both process groups get SIGTERM,
        SIGKILL after ``kill_grace``, and :class:`CommandError` is raised (partial stderr kept).
    :param shown: the argv lists reported in results and errors (the SSH runner reports the
        remote commands, not their ``ssh`` wrappers); default the argv lists themselves.
    :param on_producer_line: called with each line the producer writes on stderr (progress).
    :param cancel: asked a few times a second; when it answers true both groups are stopped
        as on a timeout and :class:`~bhype_core.errors.CommandCancelled` is raised.
    :raises CommandError: a side could not be started (nothing is left running) or timed out.
    """
    shown_producer, shown_consumer = shown or (producer, consumer)
    started = time.monotonic()
    read_end, write_end = os.pipe()
    processes: list[subprocess.Popen[bytes]] = []
    try:
        processes.append(_start(producer, shown_producer, started, stdin=subprocess.DEVNULL,
                                stdout=write_end, stderr=subprocess.PIPE))
        processes.append(_start(consumer, shown_consumer, started, stdin=read_end,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE))
    except BaseException:
        for process in processes:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait()
        raise
    finally:
        # Only the children hold the pipe now: the consumer sees end-of-file when the producer
        # exits, the producer a broken pipe when the consumer does.
        os.close(read_end)
        os.close(write_end)
    source, sink = processes
    assert source.stderr is not None and sink.stdout is not None and sink.stderr is not None
    readers = [_Reader(source.stderr, on_producer_line), _Reader(sink.stdout), _Reader(sink.stderr)]
    for reader in readers:
        reader.start()
    asked = {"cancel": False}

    def stop_check() -> bool:
        if cancel is not None and cancel():
            asked["cancel"] = True
            return True
        # The consumer failed: the producer may never notice. A local one gets SIGPIPE, but an
        # ssh one (a remote zfs send) only blocks once the channel's window is full, forever.
        return sink.poll() not in (None, 0)

    try:
        outcome = wait_or_cancel(processes, started + timeout, stop_check)
        stopped = outcome == "cancelled" and not asked["cancel"] and source.poll() is None
        if outcome == "cancelled" and not asked["cancel"]:
            outcome = "done"  # the consumer's failure is the result; the producer is stopped
        if outcome != "done" or source.poll() is None:
            _stop(processes, kill_grace)
    except BaseException:
        for process in processes:
            _signal_group(process.pid, signal.SIGKILL)
            process.wait()
        raise
    for reader in readers:
        reader.join(timeout=kill_grace)
    duration = time.monotonic() - started
    producer_err, consumer_out, consumer_err = (reader.data() for reader in readers)
    if outcome == "cancelled":
        raise CommandCancelled(shown_consumer, None, decode(consumer_err or producer_err), duration,
                               reason=f"cancelled (piped from {shown_producer[0]})", stdout=decode(consumer_out))
    if outcome == "timeout":
        raise CommandError(
            shown_consumer,
            None,
            decode(consumer_err or producer_err),
            duration,
            reason=f"timed out after {timeout:g}s (piped from {shown_producer[0]})",
            stdout=decode(consumer_out),
        )
    return PipeResult(
        producer=_result(shown_producer, source.returncode, b"", producer_err, duration),
        consumer=_result(shown_consumer, sink.returncode, consumer_out, consumer_err, duration),
        duration=duration,
        producer_stopped=stopped,
    )


def _wait_all(processes: list[subprocess.Popen[bytes]], deadline: float) -> bool:
    """Wait for every process until ``deadline``; False if one is still running then."""
    return wait_or_cancel(processes, deadline, None) == "done"


def wait_or_cancel(processes: list[subprocess.Popen[bytes]], deadline: float, cancel: CancelCheck | None) -> str:
    """Wait for every process until ``deadline``: ``"done"``, ``"timeout"``, or ``"cancelled"``
    as soon as ``cancel`` (asked every :data:`POLL_SECONDS`) answers true."""
    for process in processes:
        while process.poll() is None:
            left = deadline - time.monotonic()
            if left <= 0:
                return "timeout"
            try:
                process.wait(timeout=left if cancel is None else min(left, POLL_SECONDS))
            except subprocess.TimeoutExpired:
                if cancel is not None and cancel():
                    return "cancelled"
    return "done"


def _stop(processes: list[subprocess.Popen[bytes]], grace: float) -> None:
    """SIGTERM both groups, SIGKILL what is left after ``grace``, reap both."""
    for process in processes:
        _signal_group(process.pid, signal.SIGTERM)
    if not _wait_all(processes, time.monotonic() + grace):
        for process in processes:
            _signal_group(process.pid, signal.SIGKILL)
    for process in processes:
        process.wait()


def _result(argv: list[str], returncode: int, stdout: bytes, stderr: bytes, duration: float) -> Result:
    return Result(argv=list(argv), returncode=returncode, stdout=decode(stdout), stderr=decode(stderr),
                  stdout_bytes=stdout, stderr_bytes=stderr, duration=duration)
