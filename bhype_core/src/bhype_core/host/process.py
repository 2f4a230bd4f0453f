"""Run one local process in its own session: capture both outputs, kill its group on timeout."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

from bhype_core.errors import CommandError
from bhype_core.host.pdeathsig import die_with_parent

DEFAULT_KILL_GRACE = 2.0


def decode(data: bytes) -> str:
    """Command output as text: UTF-8, undecodable bytes replaced (never raises)."""
    return data.decode("utf-8", errors="replace")


@dataclass
class Result:
    """What a host command did. ``stdout``/``stderr`` are decoded text; the ``*_bytes`` fields
    keep the exact output for binary data."""

    argv: list[str]
    returncode: int
    stdout: str
    stderr: str
    stdout_bytes: bytes
    stderr_bytes: bytes
    duration: float
    dry_run: bool = False

    @property
    def ok(self) -> bool:
        """True when the command exited with status 0."""
        return self.returncode == 0

    def error(self) -> CommandError:
        """The :class:`CommandError` describing this result (whatever its exit status)."""
        return CommandError(self.argv, self.returncode, self.stderr, self.duration, stdout=self.stdout)

    def assert_success(self) -> Result:
        """Return ``self`` if the command succeeded, else raise a :class:`CommandError`
        carrying argv, exit status, captured stdout/stderr and duration."""
        if not self.ok:
            raise self.error()
        return self

def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass  # the group is already gone


def run_process(
    argv: list[str],
    *,
    timeout: float,
    input: bytes | None,
    env: dict[str, str] | None,
    cwd: str | os.PathLike[str] | None,
    kill_grace: float = DEFAULT_KILL_GRACE,
    display_argv: list[str] | None = None,
    on_line: Callable[[str, str], object] | None = None,
    cancel: Callable[[], bool] | None = None,
) -> Result:
    """Run ``argv`` locally in its own session and wait for it, capturing both outputs.

    ``communicate`` reads stdout and stderr concurrently, so outputs of any size cannot
    deadlock. On timeout the whole process group gets SIGTERM, then SIGKILL after
    ``kill_grace`` seconds, and :class:`CommandError` is raised with the partial output.
    ``display_argv`` is the argv reported in results and errors (the SSH runner reports the
    remote command, not its ``ssh`` wrapper). ``on_line(stream, line)`` is called with each
    line of stdout and stderr as it arrives, and ``cancel()`` is asked a few times a second
    (true: the group is stopped, :class:`~bhype_core.errors.CommandCancelled`); either one
    hands the process to :mod:`bhype_core.host.streaming`.
    """
    shown = display_argv or argv
    started = time.monotonic()
    try:
        # start_new_session: the child leads a new process group, so a timeout can kill the
        # grandchildren it spawned too (a shell pipeline, a daemon that forked).
        # die_with_parent: a kill -9 of the worker takes the command with it (issue 11).
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL if input is None else subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=None if env is None else {**os.environ, **env},
            cwd=cwd,
            start_new_session=True,
            preexec_fn=die_with_parent(),  # noqa: PLW1509 (resolved before fork; no locks taken)
        )
    except FileNotFoundError as exc:
        if cwd is not None and exc.filename is not None and os.fspath(exc.filename) == os.fspath(cwd):
            reason = f"working directory not found: {os.fspath(cwd)}"
        else:
            reason = f"command not found: {argv[0]}"
        raise CommandError(shown, None, duration=time.monotonic() - started, reason=reason) from None
    except PermissionError as exc:
        reason = f"permission denied: {exc.filename or argv[0]}"
        raise CommandError(shown, None, duration=time.monotonic() - started, reason=reason) from None
    except NotADirectoryError:
        reason = f"working directory is not a directory: {os.fspath(cwd or '')}"
        raise CommandError(shown, None, duration=time.monotonic() - started, reason=reason) from None

    if on_line is not None or cancel is not None:
        from bhype_core.host.streaming import stream_process

        return stream_process(proc, shown=list(shown), started=started, timeout=timeout, input=input,
                              kill_grace=kill_grace, on_line=on_line, cancel=cancel)
    try:
        stdout, stderr = proc.communicate(input=input, timeout=timeout)
    except subprocess.TimeoutExpired:
        stdout, stderr = _terminate(proc, kill_grace)
        out, err = decode(stdout), decode(stderr)
        raise CommandError(
            shown,
            None,
            err,
            time.monotonic() - started,
            reason=f"timed out after {timeout:g}s",
            stdout=out,
        ) from None
    except BaseException:
        # KeyboardInterrupt or similar while waiting: do not leave the group running.
        _signal_group(proc.pid, signal.SIGKILL)
        proc.wait()
        raise
    return Result(
        argv=list(shown),
        returncode=proc.returncode,
        stdout=decode(stdout),
        stderr=decode(stderr),
        stdout_bytes=stdout,
        stderr_bytes=stderr,
        duration=time.monotonic() - started,
    )


def _terminate(proc: subprocess.Popen[bytes], grace: float) -> tuple[bytes, bytes]:
    """SIGTERM the process group, SIGKILL it after ``grace``; return everything captured."""
    _signal_group(proc.pid, signal.SIGTERM)
    try:
        return proc.communicate(timeout=grace)
    except subprocess.TimeoutExpired:
        pass
    _signal_group(proc.pid, signal.SIGKILL)
    try:
        return proc.communicate(timeout=grace)
    except subprocess.TimeoutExpired as exc:
        # A process outside the group still holds our pipes (one that called setsid, or an
        # ssh control master the killed client handed its stdio to): stop waiting for
        # end-of-file and keep what arrived. The child itself must not outlive this call.
        proc.kill()
        proc.wait()
        for pipe in (proc.stdout, proc.stderr):
            if pipe is not None:
                pipe.close()
        return _as_bytes(exc.stdout), _as_bytes(exc.stderr)


def _as_bytes(data: bytes | str | None) -> bytes:
    if data is None:
        return b""
    return data if isinstance(data, bytes) else data.encode()
