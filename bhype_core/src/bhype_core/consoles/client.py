"""The API process's side of the console broker (:mod:`bhype_core.consoles.broker`): ask the
root worker where a VM's console is, or for a connected descriptor to it."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

from bhype_core.auth.wire import MAX_MESSAGE, ProtocolError, encode
from bhype_core.consoles.broker import broker_socket
from bhype_core.errors import BhypeError, Conflict, NotFound, ValidationErrors

_HEADER = 4  # wire.py: a 4-byte big-endian length before the JSON body


class ConsoleBrokerUnavailable(BhypeError):
    """The root worker's console broker cannot be reached or failed (HTTP 503)."""

    code = "console_broker_unavailable"
    http_status = 503


def broker_path(runtime: Any) -> Path | None:
    """The broker socket when this process must go through it: not root, and a root worker
    published one (the production split). ``None``: open consoles directly (root, or one
    account runs everything)."""
    if os.geteuid() == 0:
        return None
    path = broker_socket(runtime.settings)
    try:
        return path if path.is_socket() else None
    except OSError:
        return None


def _length(data: bytes) -> int:
    """The announced body length once the header is in (0 before)."""
    if len(data) < _HEADER:
        return 0
    size = int.from_bytes(data[:_HEADER], "big")
    if size > MAX_MESSAGE:
        raise ProtocolError(f"announced answer of {size} bytes is too large")
    return size


class ConsoleBrokerClient:
    """One short connection per call, every step under ``timeout`` seconds."""

    def __init__(self, socket_path: Path | str, timeout: float = 15.0) -> None:
        self.socket_path = str(socket_path)
        self.timeout = timeout

    def locate(self, vm: str, kind: str) -> dict[str, Any]:
        """VM ``vm``'s ``kind`` console entry (``unix``/``device``/``host``+``port``, ``password``).

        :raises NotFound: no such VM or console. :raises Conflict: the VM is not running.
        :raises ConsoleBrokerUnavailable: the broker is not there or failed.
        """
        console, fd = self._call("locate", vm, kind)
        if fd is not None:
            os.close(fd)
        return console

    def open(self, vm: str, kind: str) -> tuple[int, dict[str, Any]]:
        """A connected descriptor to VM ``vm``'s ``kind`` console (the caller owns it) and the
        console entry it belongs to. Raises as :meth:`locate` does."""
        console, fd = self._call("open", vm, kind)
        if fd is None:
            raise ConsoleBrokerUnavailable("the console broker answered without a descriptor")
        return fd, console

    def _call(self, op: str, vm: str, kind: str) -> tuple[dict[str, Any], int | None]:
        fds: list[int] = []
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
                sock.settimeout(self.timeout)
                sock.connect(self.socket_path)
                try:
                    sock.sendall(encode({"op": op, "args": {"vm": vm, "kind": kind}}))
                except (BrokenPipeError, ConnectionResetError):
                    # The broker answers a refused peer before reading and hangs up (as the
                    # auth daemon does); its answer is still waiting in our receive queue.
                    pass
                data = b""
                while len(data) < _HEADER + _length(data):
                    # The descriptor arrives with the answer's first bytes (SCM_RIGHTS).
                    chunk, received, _, _ = socket.recv_fds(sock, 65536, 1)
                    fds += received
                    if not chunk:
                        raise ProtocolError("the broker closed the connection without answering")
                    data += chunk
        except (OSError, ProtocolError) as exc:
            for received_fd in fds:
                os.close(received_fd)
            raise ConsoleBrokerUnavailable(
                f"the console broker at {self.socket_path} is unreachable ({exc}); is `bhype worker` running as root?"
            ) from None
        try:
            decoded = json.loads(data[_HEADER:].decode())
        except ValueError:
            decoded = None
        answer: dict[str, Any] = decoded if isinstance(decoded, dict) else {}
        fd = fds[0] if fds else None
        for extra in fds[1:]:
            os.close(extra)
        result = answer.get("result")
        if answer.get("ok") is True and isinstance(result, dict) and isinstance(result.get("console"), dict):
            return result["console"], fd
        if fd is not None:
            os.close(fd)
        raw_error = answer.get("error")
        error: dict[str, Any] = raw_error if isinstance(raw_error, dict) else {}
        code, message = str(error.get("code", "")), str(error.get("message", "malformed answer"))
        if code == NotFound.code:
            raise NotFound(message)
        if code == Conflict.code:
            raise Conflict(message)
        if code == ValidationErrors.code:
            raise ValidationErrors([("", message)])
        raise ConsoleBrokerUnavailable(f"the console broker refused ({code or 'no code'}): {message}")
