"""A real OpenSSH server on a loopback port for tests: throwaway keys, key auth only, own pid."""

from __future__ import annotations

import getpass
import os
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from bhype_core.errors import CommandError
from bhype_core.host.runner import LocalRunner
from bhype_core.host.ssh import SSHRunner
from bhype_core.testing.parts import missing
from bhype_core.testing.ports import free_port

SSHD_PROGRAM = "/usr/sbin/sshd"
START_TIMEOUT = 15.0


@dataclass
class SshdServer:
    """A running test sshd and the client side needed to reach it."""

    host: str
    port: int
    user: str
    identity: Path
    known_hosts: Path
    directory: Path
    process: subprocess.Popen[bytes]
    log_path: Path
    session_token: str = ""
    _runners: list[SSHRunner] = field(default_factory=list, repr=False)

    @property
    def target(self) -> str:
        """``ssh://user@127.0.0.1:port``, the ``[runner] target`` form."""
        return f"ssh://{self.user}@{self.host}:{self.port}"

    @property
    def ssh_options(self) -> tuple[str, ...]:
        """Client options that trust exactly this server's throwaway host key."""
        return (
            f"UserKnownHostsFile={self.known_hosts}",
            "GlobalKnownHostsFile=/dev/null",
            "StrictHostKeyChecking=yes",
        )

    def runner(self, **kwargs: Any) -> SSHRunner:
        """A ready-made :class:`SSHRunner` for this server (closed when the server stops).

        Keyword arguments are passed to :class:`SSHRunner` (``default_timeout``,
        ``control_master``, another ``identity``, extra ``options``…).
        """
        params: dict[str, Any] = {"port": self.port, "user": self.user, "identity": self.identity}
        params.update(kwargs)
        params["options"] = (*self.ssh_options, *kwargs.get("options", ()))
        runner = SSHRunner(self.host, **params)
        self._runners.append(runner)
        return runner

    def log(self) -> str:
        """What sshd logged so far (``-e``: to stderr, kept in a file)."""
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        """Stop this sshd and every process it started (by pid only), then close the runners."""
        # Per-connection sshd children call setsid(), so they are not in our process group:
        # find them by parent pid. Session commands orphaned earlier (a timed-out command
        # whose connection closed) are found by the variable sshd set in their environment.
        pids = _descendants(self.process.pid) + _marked(self.session_token)
        if self.process.poll() is None:
            pids.insert(0, self.process.pid)
        for pid in pids:
            _kill(pid, signal.SIGTERM)
        for runner in self._runners:
            runner.close()
        self._runners.clear()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            for pid in pids:
                _kill(pid, signal.SIGKILL)
            self.process.wait()


def _kill(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _descendants(root: int) -> list[int]:
    """Pids below ``root`` in the process tree (Linux /proc; empty where there is none)."""
    children: dict[int, list[int]] = {}
    try:
        entries = os.listdir("/proc")
    except OSError:
        return []
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        # Field 4 is the parent pid; the command name (field 2) may contain spaces, so split
        # after its closing parenthesis.
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found: list[int] = []
    pending = [root]
    while pending:
        for child in children.get(pending.pop(), []):
            found.append(child)
            pending.append(child)
    return found


def _marked(token: str) -> list[int]:
    """Pids whose environment holds ``BHYPE_TEST_SSHD=token`` (Linux /proc)."""
    if not token:
        return []
    needle = f"BHYPE_TEST_SSHD={token}".encode()
    found = []
    for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if entry.isdigit() and int(entry) != os.getpid():
            try:
                environ = Path(f"/proc/{entry}/environ").read_bytes()
            except OSError:
                continue
            if needle in environ.split(b"\0"):
                found.append(int(entry))
    return found


def _write_config(
    directory: Path, host: str, port: int, user: str, host_key: Path, authorized: Path, token: str
) -> Path:
    config = directory / "sshd_config"
    config.write_text(
        "\n".join(
            [
                f"ListenAddress {host}:{port}",
                f"HostKey {host_key}",
                "PidFile none",
                f"AuthorizedKeysFile {authorized}",
                "PubkeyAuthentication yes",
                "PasswordAuthentication no",
                "KbdInteractiveAuthentication no",
                # PAM sessions (pam_loginuid…) fail in containers; key auth needs no PAM.
                "UsePAM no",
                # Keys live under a world-traversable temporary directory.
                "StrictModes no",
                "PermitRootLogin prohibit-password",
                f"AllowUsers {user}",
                "MaxSessions 100",
                "MaxStartups 100:30:200",
                "PrintMotd no",
                # Marks every session process, so stop() finds the orphaned ones too.
                f"SetEnv BHYPE_TEST_SSHD={token}",
                "LogLevel INFO",
                "",
            ]
        )
    )
    return config


def _wait_listening(process: subprocess.Popen[bytes], log_path: Path, host: str, port: int) -> bool:
    """True once sshd logged that it listens; False if it exited (e.g. port taken)."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if f"Server listening on {host} port {port}" in log_path.read_text(errors="replace"):
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.02)
    raise RuntimeError(f"sshd did not start within {START_TIMEOUT}s: {log_path.read_text(errors='replace')}")


@contextmanager
def start_sshd(directory: Path, user: str | None = None, host: str = "127.0.0.1") -> Iterator[SshdServer]:
    """Start sshd (foreground, a child of this process) with fresh keys under ``directory``.

    Usable outside pytest (benchmarks). Needs root for ``/run/sshd`` (the privilege
    separation directory sshd insists on) unless it already exists.
    """
    if not os.access(SSHD_PROGRAM, os.X_OK):
        # A missing server must fail the run, never skip the SSH tests silently.
        raise RuntimeError(f"{SSHD_PROGRAM} not found: install openssh-server (tools/install-test-deps)")
    directory.mkdir(parents=True, exist_ok=True)
    user = user or getpass.getuser()
    local = LocalRunner(default_timeout=30)
    host_key, client_key = directory / "ssh_host_ed25519_key", directory / "id_ed25519"
    for key in (host_key, client_key):
        local.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "bhype-test", "-f", str(key)])
    authorized = directory / "authorized_keys"
    authorized.write_text(client_key.with_suffix(".pub").read_text())
    client_key.chmod(0o600)  # ssh refuses a private key others can read
    Path("/run/sshd").mkdir(mode=0o755, exist_ok=True)

    token = uuid.uuid4().hex
    server: SshdServer | None = None
    for attempt in range(5):
        port = free_port(host)
        config = _write_config(directory, host, port, user, host_key, authorized, token)
        log_path = directory / f"sshd-{attempt}.log"
        with log_path.open("wb") as log_file:
            process = subprocess.Popen(
                [SSHD_PROGRAM, "-D", "-e", "-f", str(config)],
                stdin=subprocess.DEVNULL,
                stdout=log_file,
                stderr=log_file,
                start_new_session=True,
            )
        try:
            listening = _wait_listening(process, log_path, host, port)
        except RuntimeError:
            process.kill()  # never leave a half-started server behind
            process.wait()
            raise
        if listening:
            known_hosts = directory / "known_hosts"
            known_hosts.write_text(f"[{host}]:{port} {host_key.with_suffix('.pub').read_text()}")
            server = SshdServer(
                host, port, user, client_key, known_hosts, directory, process, log_path, token
            )
            break
        process.wait()  # exited (port taken between probe and bind): try another port
    if server is None:
        raise RuntimeError(f"sshd could not start: {log_path.read_text(errors='replace')}")
    try:
        probe = server.runner(default_timeout=15, control_master=False)
        try:
            probe.run(["true"])
        except CommandError as exc:
            raise RuntimeError(f"test sshd is not usable: {exc}\nsshd log:\n{server.log()}") from None
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def sshd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SshdServer]:
    """A real OpenSSH server on a free 127.0.0.1 port, shared by the test module.

    Key auth only with throwaway host and client keys; ``.runner()`` builds an
    :class:`~bhype_core.host.ssh.SSHRunner` that trusts exactly this server. Stopped (its own
    pid and the sessions it forked) after the module. A machine without OpenSSH's server
    fails the test, unless the run says ``--without sshd``.
    """
    if not os.access(SSHD_PROGRAM, os.X_OK):
        missing("sshd", f"{SSHD_PROGRAM} not found: install openssh-server (tools/install-test-deps)")
    with start_sshd(tmp_path_factory.mktemp("sshd")) as server:
        yield server
