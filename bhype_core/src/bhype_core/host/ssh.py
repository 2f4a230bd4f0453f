"""Run host commands on another machine through the OpenSSH client (argv quoted once)."""

from __future__ import annotations

import getpass
import logging
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import threading
import time
import weakref
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from bhype_core.errors import CommandError, ConfigError
from bhype_core.host.pipeline import CancelCheck
from bhype_core.host.runner import (
    DEFAULT_KILL_GRACE,
    DEFAULT_TIMEOUT,
    ArgvError,
    OutputLineCallback,
    Result,
    Runner,
    run_process,
)

# ssh(1): "ssh exits with the exit status of the remote command or with 255 if an error
# occurred." A remote command exiting 255 is indistinguishable; bHype treats 255 as ssh's own.
SSH_ERROR_STATUS = 255

# A server that drops a connection before the protocol starts (sshd's MaxStartups, sshd_config(5):
# "random early drop" of unauthenticated connections; dropbear's fixed limit of unauthenticated
# connections per address) makes ssh exit 255 with nothing run, saying
# "kex_exchange_identification: Connection closed by remote host" or
# "kex_exchange_identification: read: Connection reset by peer" (OpenSSH sshconnect.c; before
# 8.x "ssh_exchange_identification: "). Nothing later is retried: once the key exchange has
# begun, a dropped connection may have run the command.
_DROPPED_BEFORE_LOGIN = re.compile(r"^(?:kex|ssh)_exchange_identification: ", re.MULTILINE)
CONNECT_RETRY_PAUSES = (0.5, 2.0)  # seconds before the second and the third try

log = logging.getLogger("bhype.host.ssh")


def dropped_before_login(result: Result) -> bool:
    """Whether ssh failed because the server dropped the connection before the login: the
    remote command never started, so running it again is safe."""
    return (result.returncode == SSH_ERROR_STATUS and not result.stdout_bytes
            and _DROPPED_BEFORE_LOGIN.search(result.stderr) is not None)


def parse_ssh_target(target: str) -> tuple[str | None, str, int]:
    """Split ``ssh://[user@]host[:port]`` (IPv6 hosts in brackets) into ``(user, host, port)``.

    :raises ConfigError: naming ``runner.target`` when the value is not of that form.
    """
    problem = f"runner.target: {target!r} is neither 'local' nor ssh://[user@]host[:port]"
    try:
        parts = urlsplit(target)
        port = parts.port or 22
    except ValueError:
        raise ConfigError(f"{problem} (bad port)") from None
    if parts.scheme != "ssh" or not parts.hostname:
        raise ConfigError(problem)
    if parts.password is not None or parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ConfigError(f"{problem} (no password, path or query allowed)")
    if parts.hostname.startswith("-") or (parts.username or "").startswith("-"):
        raise ConfigError(f"{problem} (host and user may not start with '-')")
    return parts.username or None, parts.hostname, port


def _quote_word(word: str) -> str:
    # Always quote the program name: a quoted word is never read by the remote shell as a
    # reserved word (`if`), an assignment (`A=b`) or an alias.
    return "'" + word.replace("'", "'\"'\"'") + "'"


def remote_command(argv: Sequence[str], env: dict[str, str] | None = None, cwd: str | None = None) -> str:
    """The one string the remote login shell receives: every word quoted once, so the
    remote program gets exactly ``argv`` (no expansion, no ``;``, no ``$()``).

    ``env`` is passed through ``env(1)``; ``cwd`` becomes a leading ``cd DIR &&``.
    """
    words = list(argv)
    if env:
        command = shlex.join(["env", *(f"{name}={value}" for name, value in env.items()), *words])
    else:
        command = " ".join([_quote_word(words[0]), *(shlex.quote(w) for w in words[1:])])
    if cwd is not None:
        command = f"cd {shlex.quote(cwd)} && {command}"
    return command


# sun_path holds 104 bytes on FreeBSD (108 on Linux). ssh adds "/%C" (41) and, while it sets
# the master up, a ".XXXXXXXXXXXXXXXX" suffix (17); the directory itself is "bhype-ssh-" + 8.
MAX_CONTROL_BASE = 104 - 41 - 17 - 19


def control_base() -> str:
    """Where the private ControlPath directory goes: the temporary directory, unless its path
    is too long for a socket (nox, pytest and CI often set a deep ``TMPDIR``), then ``/tmp``."""
    base = tempfile.gettempdir()
    return base if len(base) <= MAX_CONTROL_BASE else "/tmp"


def _close_master(ssh_argv: list[str], control_dir: str) -> None:
    """Ask the control master to exit and remove its private directory (also run at exit)."""
    try:
        subprocess.run(ssh_argv, stdin=subprocess.DEVNULL, capture_output=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        pass  # no master running, or ssh gone: nothing to close
    shutil.rmtree(control_dir, ignore_errors=True)


class SSHRunner(Runner):
    """Runs commands on ``host`` with ``ssh -o BatchMode=yes … user@host -- <command>``.

    The local ``ssh`` is started from an argv list; the remote side gets one string built by
    :func:`remote_command`. With ``control_master`` (default) the first command opens a
    shared connection (ControlMaster/ControlPersist, socket in a private temporary
    directory) that later commands reuse; :meth:`close` ends it.

    ``options`` are ``ssh_config`` settings (``"StrictHostKeyChecking=yes"``) passed as
    ``-o``; they come first, so they override bHype's defaults (ssh keeps the first value).

    Limits: on timeout the local ``ssh`` is killed, which closes the channel; a remote
    command that neither reads nor writes may keep running until it next touches its pipes.
    The remote login shell must be POSIX-compatible (``sh``; csh rejects quoted newlines).
    """

    streams_output = True  # the remote output comes through the local ssh's pipes as it is written

    def __init__(
        self,
        host: str,
        port: int = 22,
        user: str | None = None,
        identity: str | os.PathLike[str] | None = None,
        options: Sequence[str] = (),
        default_timeout: float = DEFAULT_TIMEOUT,
        *,
        connect_timeout: int = 10,
        control_master: bool = True,
        control_persist: int = 60,
        kill_grace: float = DEFAULT_KILL_GRACE,
        ssh_program: str = "ssh",
    ) -> None:
        super().__init__(default_timeout)
        if not host or host.startswith("-") or any(c.isspace() for c in host):
            raise ArgvError(f"ssh host {host!r} is not a host name or address")
        if user is not None and (not user or user.startswith("-") or "@" in user):
            raise ArgvError(f"ssh user {user!r} is not a user name")
        if not isinstance(port, int) or not 1 <= port <= 65535:
            raise ArgvError(f"ssh port {port!r} must be 1-65535")
        for option in options:
            if not isinstance(option, str) or not option or option.startswith("-"):
                raise ArgvError(f"ssh option {option!r} must be an ssh_config 'Key=Value', not a flag")
        self.host = host
        self.port = port
        self.user = user
        self.identity = None if identity is None else Path(identity)
        self.options = tuple(options)
        self.connect_timeout = connect_timeout
        self.control_master = control_master
        self.control_persist = control_persist
        self.kill_grace = kill_grace
        self.ssh_program = ssh_program
        self._control_dir: str | None = None
        self._finalizer: weakref.finalize | None = None
        self._lock = threading.Lock()

    @property
    def destination(self) -> str:
        """``user@host`` (or ``host`` when no user is set: ssh then uses its own default)."""
        return f"{self.user}@{self.host}" if self.user else self.host

    @property
    def target(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        user = self.user or _local_user()
        return f"ssh://{user}@{host}:{self.port}"

    def ssh_argv(self, command: str) -> list[str]:
        """The local argv that runs ``command`` (one remote shell string) on the host."""
        argv = [self.ssh_program, *self._user_options()]
        argv += ["-o", "BatchMode=yes", "-o", f"ConnectTimeout={self.connect_timeout}"]
        # ERROR hides "Permanently added … to known hosts" notices that would pollute stderr.
        argv += ["-o", "LogLevel=ERROR", "-T", "-p", str(self.port)]
        if self.identity is not None:
            argv += ["-i", str(self.identity), "-o", "IdentitiesOnly=yes"]
        argv += self._control_options()
        argv += [self.destination, "--", command]
        return argv

    def _control_options(self) -> list[str]:
        if not self.control_master:
            return []
        with self._lock:
            if self._control_dir is None:
                # Private (0700) directory: whoever can reach the socket can run commands.
                self._control_dir = tempfile.mkdtemp(prefix="bhype-ssh-", dir=control_base())
                exit_argv = [self.ssh_program, *self._user_options(), "-p", str(self.port)]
                exit_argv += [*self._control_path_options(), "-O", "exit", self.destination]
                self._finalizer = weakref.finalize(self, _close_master, exit_argv, self._control_dir)
        return [
            "-o", "ControlMaster=auto",
            "-o", f"ControlPersist={self.control_persist}",
            *self._control_path_options(),
        ]

    def _control_path_options(self) -> list[str]:
        # %C is a hash of local host, remote host, port and user: short enough for the
        # 104-byte socket path limit, unique per destination.
        return ["-o", f"ControlPath={self._control_dir}/%C"]

    def _user_options(self) -> list[str]:
        return [word for option in self.options for word in ("-o", option)]

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
        command = remote_command(argv, env, cwd)
        deadline = time.monotonic() + timeout
        for attempt, pause in enumerate((*CONNECT_RETRY_PAUSES, None)):
            result = run_process(
                self.ssh_argv(command),
                timeout=timeout if attempt == 0 else max(deadline - time.monotonic(), 1.0),
                input=input,
                env=None,
                cwd=None,
                kill_grace=self.kill_grace,
                display_argv=argv,
                on_line=on_line,
                cancel=cancel,
            )
            if pause is None or not dropped_before_login(result) or deadline - time.monotonic() < pause + 1.0:
                break
            log.warning("%s dropped the connection before the login (%s): trying again in %.1f s",
                        self.target, result.stderr.strip().splitlines()[-1], pause)
            time.sleep(pause)
        self._check_side(result)
        return result

    def local_argv(self, argv: list[str]) -> list[str]:
        """``ssh … -- <argv quoted once>``: one side of a pipeline runs on the host."""
        return self.ssh_argv(remote_command(argv))

    def _check_side(self, result: Result) -> None:
        if result.returncode == SSH_ERROR_STATUS:
            raise CommandError(
                result.argv,
                SSH_ERROR_STATUS,
                result.stderr,
                result.duration,
                reason=f"ssh connection failed ({self.target})",
                stdout=result.stdout,
            )

    def close(self) -> None:
        """Stop the shared control connection, if one was opened; later commands open a new one."""
        with self._lock:
            finalizer, self._finalizer, self._control_dir = self._finalizer, None, None
        if finalizer is not None:
            finalizer()

    def __repr__(self) -> str:
        return f"SSHRunner({self.target!r})"


def _local_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "?"
