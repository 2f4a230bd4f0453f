"""A real rsync daemon on a loopback port for tests: password-protected modules, own pid.

rsyncd.conf(5): ``auth users`` + ``secrets file`` (``user:password`` lines; 0600 and, for a
daemon running as root, owned by root: ``strict modes``) make a module ask for a password; the
client gives it with ``--password-file`` or ``RSYNC_PASSWORD``. ``--no-detach`` keeps the daemon
a child of the test (rsync(1) ``--daemon``), so it is stopped by its own pid.
"""

from __future__ import annotations

import os
import random
import secrets
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from bhype_core.testing.ports import free_port

START_TIMEOUT = 15.0


@dataclass
class RsyncDaemon:
    """A running test rsync daemon: where it listens, its user and password, its modules."""

    host: str
    port: int
    user: str
    password: str
    modules: dict[str, Path]
    directory: Path
    process: subprocess.Popen[bytes]
    log_path: Path

    def url(self, module: str, path: str = "") -> str:
        """``rsync://USER@HOST:PORT/MODULE/PATH`` (no password: that goes in a file or the env)."""
        tail = "/".join(part for part in (module, path.strip("/")) if part)
        return f"rsync://{self.user}@{self.host}:{self.port}/{tail}"

    def log(self) -> str:
        """What the daemon logged so far."""
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def stop(self) -> None:
        """Stop the daemon and the per-connection children it forked (its process group)."""
        if self.process.poll() is None:
            try:
                os.killpg(self.process.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()


def _config(directory: Path, modules: Mapping[str, Path], user: str, secrets_file: Path,
            extra: Mapping[str, Mapping[str, str]]) -> str:
    lines = ["use chroot = no", "uid = 0", "gid = 0", "max connections = 20", f"log file = {directory / 'rsyncd.log'}",
             "reverse lookup = no", ""]
    for name, path in modules.items():
        lines += [f"[{name}]", f"path = {path}", "read only = no", f"auth users = {user}",
                  f"secrets file = {secrets_file}"]
        lines += [f"{key} = {value}" for key, value in extra.get(name, {}).items()]
        lines.append("")
    return "\n".join(lines)


@contextmanager
def start_rsyncd(
    directory: Path,
    modules: Mapping[str, Path],
    *,
    user: str = "bhype-bk",
    password: str | None = None,
    host: str = "127.0.0.1",
    module_options: Mapping[str, Mapping[str, str]] | None = None,
    wrap: list[str] | None = None,
) -> Iterator[RsyncDaemon]:
    """Start ``rsync --daemon --no-detach`` with one password-protected module per entry.

    :param module_options: extra ``key = value`` lines per module (``refuse options``,
        ``pre-xfer exec`` …).
    :param wrap: argv prefix for the daemon (``["ip", "netns", "exec", NS]``: a backup host in
        a network namespace).
    """
    program = shutil.which("rsync")
    if program is None:
        raise RuntimeError("rsync not found: install rsync (tools/install-test-deps)")
    directory.mkdir(parents=True, exist_ok=True)
    password = password or secrets.token_urlsafe(12)
    secrets_file = directory / "rsyncd.secrets"
    secrets_file.write_text(f"{user}:{password}\n")
    secrets_file.chmod(0o600)
    for path in modules.values():
        Path(path).mkdir(parents=True, exist_ok=True)
    config = directory / "rsyncd.conf"
    config.write_text(_config(directory, modules, user, secrets_file, module_options or {}))
    log_path = directory / "rsyncd.log"
    daemon: RsyncDaemon | None = None
    for _attempt in range(5):
        # Inside another namespace (``wrap``) nothing else listens: any port of the range will do.
        port = random.randint(20000, 30000) if wrap else free_port(host)
        argv = [*(wrap or []), program, "--daemon", "--no-detach", f"--config={config}", f"--address={host}",
                f"--port={port}"]
        process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.DEVNULL, start_new_session=True)
        if _listening(process, port, wrap):
            daemon = RsyncDaemon(host, port, user, password, {k: Path(v) for k, v in modules.items()},
                                 directory, process, log_path)
            break
        process.wait()
    if daemon is None:
        logged = log_path.read_text(errors="replace") if log_path.exists() else ""
        raise RuntimeError(f"rsync daemon could not start: {logged}")
    try:
        yield daemon
    finally:
        daemon.stop()


def _listening(process: subprocess.Popen[bytes], port: int, wrap: list[str] | None) -> bool:
    """True once something listens on ``port`` (``ss`` inside the namespace when wrapped)."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            return False
        shown = subprocess.run([*(wrap or []), "ss", "-Hltn", f"sport = :{port}"], capture_output=True, text=True)
        if shown.stdout.strip():
            return True
        time.sleep(0.05)
    process.kill()
    process.wait()
    raise RuntimeError(f"rsync daemon did not listen on port {port} within {START_TIMEOUT}s")
