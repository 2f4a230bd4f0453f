"""The one host command runner: argv lists only, timeouts that kill the process group, audited."""

from __future__ import annotations

import os
import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from bhype_core import failpoints
from bhype_core.errors import CommandError
from bhype_core.host.argv import ArgvError, validate_argv
from bhype_core.host.audit import AuditSink, deliver, deliver_start, make_record, new_command_id, start_record
from bhype_core.host.pipeline import CancelCheck, LineCallback, PipeResult, run_pipeline
from bhype_core.host.process import DEFAULT_KILL_GRACE, Result, decode, run_process
from bhype_core.host.streaming import OutputLineCallback

__all__ = [
    "DEFAULT_KILL_GRACE", "DEFAULT_TIMEOUT", "ArgvError", "LocalRunner", "OutputLineCallback", "PipeResult", "Result",
    "Runner",
    "decode", "make_runner", "run_process", "validate_argv",
]

if TYPE_CHECKING:
    from bhype_core.config import RunnerSettings

DEFAULT_TIMEOUT = 120.0

Input = str | bytes | None

# Portable variable names only (POSIX): anything else could be read as an option or an
# assignment when the SSH runner passes the overlay through the remote env(1).
_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")


def validate_env(env: Mapping[str, str] | None) -> dict[str, str] | None:
    """Check an ``env`` overlay: portable names (``[A-Za-z_][A-Za-z0-9_]*``), str values
    without NUL."""
    if env is None:
        return None
    for name, value in env.items():
        if not isinstance(name, str) or not _ENV_NAME.match(name):
            raise ArgvError(f"env name {name!r} is not a valid variable name")
        if not isinstance(value, str) or "\0" in value:
            raise ArgvError(f"env[{name!r}] must be a str without NUL, not {value!r}")
    return dict(env)


def encode_input(data: Input) -> bytes | None:
    """Stdin for the command: ``str`` is sent as UTF-8, ``bytes`` as is."""
    if data is None or isinstance(data, bytes):
        return data
    if isinstance(data, str):
        return data.encode("utf-8")
    raise ArgvError(f"input must be str or bytes, not {type(data).__name__}")


class Runner(ABC):
    """Runs host commands. Subclasses say *where* (:meth:`_execute`); this class validates,
    applies the default timeout, audits every command and turns failures into errors."""

    #: Seconds between SIGTERM and SIGKILL when a command times out.
    kill_grace: float = DEFAULT_KILL_GRACE
    #: Whether :meth:`_execute` takes ``on_line`` and calls it while the command runs (local and
    #: SSH runners); other runners' lines are handed over when the command ends.
    streams_output: bool = False

    def __init__(self, default_timeout: float = DEFAULT_TIMEOUT) -> None:
        if default_timeout <= 0:
            raise ArgvError(f"default_timeout must be positive, not {default_timeout!r}")
        self.default_timeout = float(default_timeout)
        self._audit_sinks: list[AuditSink] = []

    @property
    @abstractmethod
    def target(self) -> str:
        """Where commands run: ``"local"`` or ``"ssh://user@host:port"`` (audit records)."""

    @abstractmethod
    def _execute(
        self,
        argv: list[str],
        *,
        timeout: float,
        input: bytes | None,
        env: dict[str, str] | None,
        cwd: str | None,
    ) -> Result:
        """Run validated ``argv``; return its :class:`Result` or raise :class:`CommandError`
        for failures without an exit status (not found, timed out, connection lost)."""

    def add_audit_sink(self, sink: AuditSink) -> None:
        """Also deliver every :class:`~bhype_core.host.audit.AuditRecord` to ``sink``."""
        self._audit_sinks.append(sink)

    def remove_audit_sink(self, sink: AuditSink) -> None:
        """Stop delivering records to ``sink``."""
        self._audit_sinks.remove(sink)

    def run(
        self,
        argv: Sequence[str],
        *,
        timeout: float | None = None,
        check: bool = True,
        input: Input = None,
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike[str] | None = None,
        on_line: OutputLineCallback | None = None,
        cancel: CancelCheck | None = None,
    ) -> Result:
        """Run one command and wait for it.

        :param argv: program and arguments, a list of ``str`` (never a shell string).
        :param timeout: seconds before the command's process group is killed; ``None`` means
            this runner's ``default_timeout`` (from ``[runner] default_timeout``).
        :param check: raise :class:`CommandError` on a non-zero exit status.
        :param input: data for stdin (``str`` is sent as UTF-8); stdin is empty when ``None``.
        :param env: variables added to (not replacing) the inherited environment.
        :param cwd: working directory for the command.
        :param on_line: called as ``on_line(stream, line)`` (``"stdout"``/``"stderr"``, the
            decoded line without its end) for every output line *as it arrives*, in this thread;
            the output is still captured whole in the result (or the error). An exception it
            raises kills the command and propagates. A runner that cannot stream
            (``streams_output`` false: dry runs, recorded test runners) hands the lines over
            when the command ends. ``\r``-redrawn progress lines (``rsync --info=progress2``)
            count as lines.
        :param cancel: asked a few times a second while the command runs (a task's
            ``cancel_requested``); when it answers true the process group is stopped and
            :class:`~bhype_core.errors.CommandCancelled` is raised with the output so far.
            Runners that cannot stream run the command to its end.
        :returns: the :class:`Result`.
        :raises ArgvError: bad ``argv``/``env``/``input``/``timeout``; nothing ran.
        :raises CommandError: not found, timed out, or (``check``) non-zero exit status.
        :raises CommandCancelled: ``cancel`` answered true.
        """
        argv = validate_argv(argv)
        env = validate_env(env)
        data = encode_input(input)
        timeout = self.default_timeout if timeout is None else timeout
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ArgvError(f"timeout must be a positive number of seconds, not {timeout!r}")
        directory = None if cwd is None else os.fspath(cwd)
        command_id = self._audit_start(argv)
        wanted = {"on_line": on_line, "cancel": cancel}
        streaming = {k: v for k, v in wanted.items() if v is not None} if self.streams_output else {}
        try:
            result = self._execute(argv, timeout=float(timeout), input=data, env=env, cwd=directory, **streaming)
        except CommandError as exc:
            self._audit(argv, exc.returncode, exc.duration, exc.stderr, error=exc.reason or str(exc),
                        command_id=command_id)
            raise
        self._audit(argv, result.returncode, result.duration, result.stderr, dry_run=result.dry_run,
                    command_id=command_id)
        # Crash-safety tests die right after a given command (``after:zfs clone``): failpoints.
        failpoints.reached(f"after:{Path(argv[0]).name} {argv[1] if len(argv) > 1 else ''}".rstrip())
        if on_line is not None and not self.streams_output:
            replay_lines(result, on_line)
        if check:
            result.assert_success()
        return result

    def audit_external(
        self, argv: Sequence[str], returncode: int | None, duration: float, stderr: str = "", error: str = ""
    ) -> None:
        """Audit a command carried out on this runner's host by other means than :meth:`run`
        (a VM supervisor forked by the pre-started launcher instead of exec'd): the same start
        and end records, delivered when it has ended."""
        argv = validate_argv(argv)
        command_id = self._audit_start(argv)
        self._audit(argv, returncode, duration, stderr, error=error, command_id=command_id)

    def pipe(
        self,
        producer: Sequence[str],
        consumer: Sequence[str],
        *,
        to: Runner | None = None,
        timeout: float | None = None,
        check: bool = True,
        on_producer_line: LineCallback | None = None,
        cancel: CancelCheck | None = None,
    ) -> PipeResult:
        """Run ``producer | consumer``: the producer's stdout becomes the consumer's stdin.

        The stream passes from one process to the other through an OS pipe, never through
        this process's memory (``zfs send | zfs receive`` of a 500 GiB VM costs nothing here).
        No shell is involved: each side is an argv list, validated and audited like
        :meth:`run` (one audit record per side, each with its own runner's target).

        :param to: the runner that runs ``consumer`` (default this one): a producer here and a
            consumer on another host (``zfs send`` here, ``zfs receive`` there over SSH).
        :param timeout: seconds for the whole pipeline (default ``default_timeout``).
        :param check: raise :class:`CommandError` when either side exits non-zero (the
            consumer's error first: a producer dying of a broken pipe is the consequence).
        :param on_producer_line: called with each line the producer writes on stderr, as it
            comes (``zfs send -v`` progress); the consumer's stdout and both stderrs are kept.
        :param cancel: asked a few times a second; when it answers true both sides are stopped
            and :class:`~bhype_core.errors.CommandCancelled` is raised (a cancelled task).
        :raises ArgvError: bad argv or timeout; nothing ran.
        :raises CommandError: a side could not be started, timed out, or (``check``) failed.
        """
        sink = self if to is None else to
        producer, consumer = validate_argv(producer), validate_argv(consumer)
        timeout = self.default_timeout if timeout is None else timeout
        if not isinstance(timeout, (int, float)) or timeout <= 0:
            raise ArgvError(f"timeout must be a positive number of seconds, not {timeout!r}")
        ids = (self._audit_start(producer), sink._audit_start(consumer))
        try:
            result = self._pipe(producer, sink, consumer, float(timeout), on_producer_line, cancel)
        except CommandError as exc:
            self._audit(producer, None, exc.duration, "", error=f"pipeline: {exc.reason or exc}", command_id=ids[0])
            sink._audit(consumer, exc.returncode, exc.duration, exc.stderr, error=exc.reason or str(exc),
                        command_id=ids[1])
            raise
        for side, runner, command_id in ((result.producer, self, ids[0]), (result.consumer, sink, ids[1])):
            runner._audit(side.argv, side.returncode, side.duration, side.stderr, dry_run=side.dry_run,
                          command_id=command_id)
        if check:
            result.assert_success()
        return result

    def _pipe(
        self,
        producer: list[str],
        sink: Runner,
        consumer: list[str],
        timeout: float,
        on_producer_line: LineCallback | None,
        cancel: CancelCheck | None = None,
    ) -> PipeResult:
        """Run the pipeline locally, each side as the argv :meth:`local_argv` gives."""
        result = run_pipeline(
            self.local_argv(producer),
            sink.local_argv(consumer),
            timeout=timeout,
            kill_grace=max(self.kill_grace, sink.kill_grace),
            shown=(producer, consumer),
            on_producer_line=on_producer_line,
            cancel=cancel,
        )
        if not result.producer_stopped:  # stopped by us after the consumer failed: not ssh's fault
            self._check_side(result.producer)
        sink._check_side(result.consumer)
        return result

    def local_argv(self, argv: list[str]) -> list[str]:
        """The argv that runs ``argv`` where this runner runs commands, started on this machine
        (a pipeline's side). Runners that cannot be piped raise :class:`ArgvError`."""
        raise ArgvError(f"{type(self).__name__} cannot run one side of a pipeline")

    def _check_side(self, result: Result) -> None:  # noqa: B027 (only SSH has transport errors)
        """Raise for a pipeline side that failed in this runner's transport (ssh's own 255)."""

    def _audit_start(self, argv: list[str]) -> str:
        """Deliver the start record of ``argv`` (before it runs); returns its ``command_id``."""
        command_id = new_command_id()
        deliver_start(start_record(target=self.target, argv=argv, command_id=command_id), self._audit_sinks)
        return command_id

    def _audit(
        self,
        argv: list[str],
        returncode: int | None,
        duration: float,
        stderr: str,
        *,
        dry_run: bool = False,
        error: str = "",
        command_id: str = "",
    ) -> None:
        record = make_record(
            target=self.target,
            argv=argv,
            returncode=returncode,
            duration=duration,
            dry_run=dry_run,
            stderr=stderr,
            error=error,
            command_id=command_id,
        )
        deliver(record, self._audit_sinks)

    def close(self) -> None:  # noqa: B027 (optional: most runners hold nothing)
        """Release resources (SSH control connections). The runner stays usable."""

    def __enter__(self) -> Runner:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def replay_lines(result: Result, on_line: OutputLineCallback) -> None:
    """Hand ``result``'s output to ``on_line`` line by line (stdout, then stderr) after the fact."""
    for stream, text in (("stdout", result.stdout), ("stderr", result.stderr)):
        for line in text.replace("\r\n", "\n").replace("\r", "\n").split("\n"):
            if line:
                on_line(stream, line)


class LocalRunner(Runner):
    """Runs commands on this machine."""

    streams_output = True

    def __init__(
        self, default_timeout: float = DEFAULT_TIMEOUT, kill_grace: float = DEFAULT_KILL_GRACE
    ) -> None:
        super().__init__(default_timeout)
        self.kill_grace = kill_grace

    @property
    def target(self) -> str:
        return "local"

    def _execute(
        self,
        argv: list[str],
        *,
        timeout: float,
        input: bytes | None,
        env: dict[str, str] | None,
        cwd: str | None,
        on_line: OutputLineCallback | None = None,
        cancel: CancelCheck | None = None,
    ) -> Result:
        return run_process(argv, timeout=timeout, input=input, env=env, cwd=cwd, kill_grace=self.kill_grace,
                           on_line=on_line, cancel=cancel)

    def local_argv(self, argv: list[str]) -> list[str]:
        return list(argv)

    def __repr__(self) -> str:
        return f"LocalRunner(default_timeout={self.default_timeout:g})"


def make_runner(settings: RunnerSettings, *, echo: Callable[[str], object] | None = None) -> Runner:
    """Build the runner ``[runner]`` describes: ``target = "local"`` or
    ``"ssh://user@host[:port]"`` (with ``ssh_identity``/``ssh_options``), wrapped in a
    :class:`~bhype_core.host.dryrun.DryRunRunner` when ``dry_run`` is set.

    :param echo: for dry runs, a callable receiving each would-be command line (e.g. ``print``).
    :raises ConfigError: ``runner.target`` is neither form.
    """
    from bhype_core.host.dryrun import DryRunRunner
    from bhype_core.host.ssh import SSHRunner, parse_ssh_target

    runner: Runner
    if settings.target == "local":
        runner = LocalRunner(default_timeout=settings.default_timeout)
    else:
        user, host, port = parse_ssh_target(settings.target)
        runner = SSHRunner(
            host,
            port=port,
            user=user,
            identity=settings.ssh_identity,
            options=tuple(settings.ssh_options),
            default_timeout=settings.default_timeout,
        )
    if settings.dry_run:
        runner = DryRunRunner(runner, echo=echo)
    return runner
