"""A small synchronous QMP client (QEMU Machine Protocol) over a unix socket, with timeouts.

Protocol facts follow QEMU's ``docs/interop/qmp-spec.rst``: the server greets with
``{"QMP": {...}}``, the client must send ``qmp_capabilities`` before any other command, every
message is one JSON object per line, replies carry the ``id`` the command was sent with, and
asynchronous ``{"event": ...}`` messages may arrive between them at any time.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bhype_core.errors import BhypeError

DEFAULT_TIMEOUT = 10.0


class QMPError(BhypeError):
    """A QMP conversation failed (no socket, timeout, connection closed, bad message)."""

    code = "qmp_error"


class QMPCommandError(QMPError):
    """QEMU answered a command with an error (``error.class`` and ``error.desc``)."""

    code = "qmp_command_error"

    def __init__(self, command: str, error_class: str, desc: str) -> None:
        super().__init__(f"QMP {command} failed: {error_class}: {desc}")
        self.command = command
        self.error_class = error_class
        self.desc = desc


class QMPClosed(QMPError):
    """The QMP connection was closed by QEMU (it exited, or it was told to ``quit``)."""

    code = "qmp_closed"


class QMPClient:
    """One QMP connection. Use :meth:`connect` (or the ``with`` statement) before commands.

    Events received while waiting for replies are kept in :attr:`events` (oldest first) so a
    caller can look for ``SHUTDOWN``/``POWERDOWN``/``RESET`` after the fact.
    """

    def __init__(self, path: str | os.PathLike[str], timeout: float = DEFAULT_TIMEOUT) -> None:
        self.path = Path(path)
        self.timeout = float(timeout)
        self.greeting: dict[str, Any] = {}
        self.events: list[dict[str, Any]] = []
        self._sock: socket.socket | None = None
        self._buffer = b""
        self._next_id = 0

    def connect(self, timeout: float | None = None) -> QMPClient:
        """Connect, read the greeting and negotiate capabilities.

        Retries until ``timeout`` while the socket does not exist or refuses connections, since
        QEMU creates it a few tens of milliseconds after being spawned.

        :raises QMPError: still no connection after ``timeout`` seconds.
        """
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                sock.settimeout(max(0.05, deadline - time.monotonic()))
                sock.connect(os.fspath(self.path))
                break
            except (FileNotFoundError, ConnectionRefusedError) as exc:
                sock.close()
                if time.monotonic() >= deadline:
                    raise QMPError(f"cannot connect to QMP socket {self.path}: {exc}") from None
                time.sleep(0.02)
            except OSError as exc:
                sock.close()
                raise QMPError(f"cannot connect to QMP socket {self.path}: {exc}") from None
        self._sock = sock
        self._buffer = b""
        greeting = self._read_message(deadline)
        if "QMP" not in greeting:
            self.close()
            raise QMPError(f"unexpected QMP greeting: {greeting!r}")
        self.greeting = greeting["QMP"]
        self.execute("qmp_capabilities", timeout=max(0.1, deadline - time.monotonic()))
        return self

    def execute(
        self, command: str, arguments: dict[str, Any] | None = None, timeout: float | None = None,
        fds: list[int] | None = None,
    ) -> Any:
        """Send one command and return its ``return`` value.

        :raises QMPCommandError: QEMU answered with an error.
        :raises QMPClosed: the connection closed before the answer (e.g. after ``quit``).
        :raises QMPError: no answer within ``timeout`` seconds.
        """
        if self._sock is None:
            raise QMPError("QMP client is not connected")
        self._next_id += 1
        ident = f"bhype-{self._next_id}"
        message: dict[str, Any] = {"execute": command, "id": ident}
        if arguments:
            message["arguments"] = arguments
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        try:
            data = json.dumps(message).encode() + b"\r\n"
            if fds:  # unix(7) SCM_RIGHTS: the descriptors go with the command's first byte
                sent = socket.send_fds(self._sock, [data], fds)
                self._sock.sendall(data[sent:])
            else:
                self._sock.sendall(data)
        except OSError as exc:
            raise QMPClosed(f"QMP {command}: connection lost: {exc}") from None
        while True:
            reply = self._read_message(deadline, context=command)
            if "event" in reply:
                self.events.append(reply)
                continue
            if reply.get("id") != ident:
                continue  # an answer to a command this client gave up waiting for
            if "error" in reply:
                error = reply["error"]
                raise QMPCommandError(command, str(error.get("class")), str(error.get("desc")))
            return reply.get("return")

    def pass_fd(self, fdname: str, fd: int, timeout: float | None = None) -> None:
        """Hand QEMU the open file ``fd`` under ``fdname`` (QMP ``getfd``: the descriptor
        travels as ``SCM_RIGHTS`` ancillary data with the command, qmp-spec.rst and QEMU's
        ``qapi/misc.json``), for a later ``fd:NAME`` migration URI. QEMU keeps its own copy;
        the caller still closes ``fd``.

        :raises QMPCommandError: QEMU refused it. :raises QMPError: no answer in time.
        """
        self.execute("getfd", {"fdname": fdname}, timeout=timeout, fds=[fd])

    def wait_event(
        self,
        name: str | tuple[str, ...],
        timeout: float | None = None,
        match: Callable[[dict[str, Any]], bool] | None = None,
    ) -> dict[str, Any]:
        """Return the first event called ``name`` (or any of several names: a tuple), already
        received or arriving within ``timeout``, removing it from :attr:`events`.

        :raises QMPError: no such event in time. :raises QMPClosed: QEMU closed the connection.
        """
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        names = (name,) if isinstance(name, str) else name
        while True:
            for index, event in enumerate(self.events):
                if event.get("event") in names and (match is None or match(event)):
                    return self.events.pop(index)
            if self._sock is None:
                raise QMPError("QMP client is not connected")
            self.events.append(self._read_message(deadline, context=f"event {name}"))

    def close(self) -> None:
        """Close the connection (QEMU keeps running)."""
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def __enter__(self) -> QMPClient:
        return self.connect() if self._sock is None else self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _read_message(self, deadline: float, context: str = "greeting") -> dict[str, Any]:
        assert self._sock is not None
        while b"\n" not in self._buffer:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise QMPError(f"QMP {context}: no answer from {self.path} in time")
            self._sock.settimeout(remaining)
            try:
                chunk = self._sock.recv(65536)
            except TimeoutError:
                raise QMPError(f"QMP {context}: no answer from {self.path} in time") from None
            except OSError as exc:
                self.close()
                raise QMPClosed(f"QMP {context}: connection lost: {exc}") from None
            if not chunk:
                self.close()
                raise QMPClosed(f"QMP {context}: QEMU closed the connection")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        try:
            message = json.loads(line)
        except ValueError:
            raise QMPError(f"QMP {context}: not JSON: {line[:200]!r}") from None
        if not isinstance(message, dict):
            raise QMPError(f"QMP {context}: not a JSON object: {line[:200]!r}")
        return message
