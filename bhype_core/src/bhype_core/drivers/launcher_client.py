"""The worker's side of the supervisor launcher (:mod:`bhype_core.drivers.launcher`).

One launcher per worker process and interpreter, started on the first VM start (or ahead of
it by :func:`warm_up`), restarted when it died; a start it cannot serve (it cannot be started,
it died before taking the request, or it cannot give the supervisor its command line) returns
``None`` and the driver execs the supervisor as before. The channel is a socket pair: the
worker holds one end, the launcher the other as its stdin; nothing else can connect.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import threading
import time
from pathlib import Path

from bhype_core.drivers.proctitle import ROOM
from bhype_core.errors import CommandError
from bhype_core.host.process import Result

log = logging.getLogger(__name__)

MODULE = "bhype_core.drivers.launcher"


class Launcher:
    """A running launcher process and the worker's end of its channel."""

    def __init__(self, python: str) -> None:
        self.python = python
        self.proc: subprocess.Popen[bytes] | None = None
        self.channel: socket.socket | None = None
        self.lock = threading.Lock()
        self.broken = ""  # why this interpreter cannot run a launcher (no retries then)

    def argv(self) -> list[str]:
        # The empty arguments reserve the room where a forked supervisor writes its command
        # line (bhype_core.drivers.proctitle); the launcher clears them from its own at once.
        return [self.python, "-m", MODULE, *[""] * ROOM]

    def _spawn(self) -> None:
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            # A long-lived helper, like the supervisor's hypervisor: the runner's interface runs
            # a command to its end. argv list, no shell; its own session (a terminal's Ctrl-C
            # goes to the worker, whose exit then ends the launcher); no parent-death signal
            # (Linux sends it when the spawning *thread* ends: the channel's end-of-file is
            # what ends the launcher, on every system). stderr: the worker's log.
            self.proc = subprocess.Popen(
                self.argv(), stdin=theirs, stdout=subprocess.DEVNULL, close_fds=True, start_new_session=True
            )
        except OSError as exc:
            ours.close()
            self.broken = f"cannot start {self.python}: {exc}"
            raise
        finally:
            theirs.close()
        self.channel = ours
        log.info("started the supervisor launcher (pid %s)", self.proc.pid)

    def _close(self) -> None:
        if self.channel is not None:
            self.channel.close()
            self.channel = None
        if self.proc is not None:
            if self.proc.poll() is None:
                self.proc.kill()
            self.proc.wait()
            self.proc = None

    def ensure(self) -> bool:
        """Start the launcher unless it runs; False when it cannot run here."""
        with self.lock:
            return self._ensure()

    def _ensure(self) -> bool:
        if self.broken:
            return False
        if self.proc is not None and self.proc.poll() is None and self.channel is not None:
            return True
        self._close()
        try:
            self._spawn()
        except OSError:
            return False
        return True

    def _send(self) -> socket.socket | None:
        """A connection to a handler (the launcher forked one for it), or None."""
        for _attempt in range(2):  # a launcher found dead is started again once
            with self.lock:
                if not self._ensure():
                    return None
                ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    assert self.channel is not None
                    socket.send_fds(self.channel, [b"L"], [theirs.fileno()])
                    return ours
                except OSError as exc:
                    log.warning("the supervisor launcher is gone (%s): starting it again", exc)
                    ours.close()
                    self._close()
                finally:
                    theirs.close()
        return None

    def launch(self, vm_dir: Path, python: str, timeout: float) -> Result | None:
        """Have the launcher daemonize the supervisor of ``vm_dir``.

        :returns: the launch's :class:`~bhype_core.host.process.Result` (as the exec'd
            command would give it), or None when the launcher did not take the request (the
            caller execs the supervisor; nothing was started).
        :raises CommandError: the request was taken but no verdict came within ``timeout``
            or the connection broke (the caller powers off whatever may have started).
        """
        argv = [python, "-m", "bhype_core.drivers.supervisor", str(vm_dir)]
        started = time.monotonic()
        conn = self._send()
        if conn is None:
            return None
        with conn:
            deadline = started + timeout
            try:
                conn.settimeout(max(0.1, deadline - time.monotonic()))
                if conn.recv(1) != b"+":  # the launcher died before the handler took it
                    return None
                request = {"vm_dir": str(vm_dir), "python": python, "env": dict(os.environ)}
                conn.sendall(json.dumps(request).encode() + b"\n")
                data = b""
                while b"\n" not in data:
                    conn.settimeout(max(0.1, deadline - time.monotonic()))
                    chunk = conn.recv(65536)
                    if not chunk:
                        break
                    data += chunk
            except TimeoutError:
                raise CommandError(argv, None, duration=time.monotonic() - started,
                                   reason=f"timed out after {timeout:g}s") from None
            except OSError as exc:
                raise CommandError(argv, None, duration=time.monotonic() - started,
                                   reason=f"the launcher's connection broke: {exc}") from None
        try:
            reply = json.loads(data.split(b"\n", 1)[0])
        except ValueError:
            raise CommandError(argv, None, duration=time.monotonic() - started,
                               reason="the launcher's handler ended without an answer") from None
        if "fallback" in reply:
            log.info("the supervisor launcher cannot launch %s (%s): exec'ing it", vm_dir, reply["fallback"])
            return None
        from bhype_core.drivers.supervisor import verdict_exit

        verdict = reply.get("verdict") or {}
        code, stderr = verdict_exit(verdict)
        stdout = json.dumps(verdict) + "\n"
        return Result(argv=argv, returncode=code, stdout=stdout, stderr=stderr, stdout_bytes=stdout.encode(),
                      stderr_bytes=stderr.encode(), duration=time.monotonic() - started)

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None and self.proc.poll() is None else None


_LAUNCHERS: dict[tuple[int, str], Launcher] = {}
_LOCK = threading.Lock()


def launcher_for(python: str) -> Launcher:
    """This process's launcher for ``python`` (a forked child of the worker gets its own:
    the parent's channel is the parent's)."""
    key = (os.getpid(), python)
    with _LOCK:
        launcher = _LAUNCHERS.get(key)
        if launcher is None:
            launcher = _LAUNCHERS[key] = Launcher(python)
        return launcher


def warm_up(python: str) -> bool:
    """Start this process's launcher now (a worker at start-up), so the first VM start does
    not pay for it; False when it cannot run."""
    return launcher_for(python).ensure()
