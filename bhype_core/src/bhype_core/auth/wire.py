"""Framing of the privileged channel: one JSON object per message, after a 4-byte length."""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

MAX_MESSAGE = 64 * 1024  # a login request is a few hundred bytes; refuse anything absurd
_HEADER = struct.Struct("!I")  # unsigned 32-bit length, network byte order


class ProtocolError(Exception):
    """The peer sent something that is not a well-formed message; the connection must close."""


def encode(message: dict[str, Any]) -> bytes:
    """One framed message: big-endian length, then compact UTF-8 JSON."""
    body = json.dumps(message, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    if len(body) > MAX_MESSAGE:
        raise ProtocolError(f"message of {len(body)} bytes exceeds the {MAX_MESSAGE}-byte limit")
    return _HEADER.pack(len(body)) + body


def send_message(sock: socket.socket, message: dict[str, Any]) -> None:
    """Send one framed message (blocking, honours the socket's timeout)."""
    sock.sendall(encode(message))


def _recv_exact(sock: socket.socket, size: int, *, at_start: bool) -> bytes | None:
    chunks: list[bytes] = []
    received = 0
    while received < size:
        chunk = sock.recv(min(size - received, 65536))
        if not chunk:
            if at_start and received == 0:
                return None  # clean end of conversation between messages
            raise ProtocolError(f"connection closed after {received} of {size} bytes")
        chunks.append(chunk)
        received += len(chunk)
    return b"".join(chunks)


def recv_message(sock: socket.socket) -> dict[str, Any] | None:
    """Receive one framed message; ``None`` when the peer closed cleanly before a new one.

    Raises :class:`ProtocolError` for an oversized length, truncated data, invalid UTF-8/JSON
    or a JSON value that is not an object; socket timeouts propagate as ``TimeoutError``.
    """
    header = _recv_exact(sock, _HEADER.size, at_start=True)
    if header is None:
        return None
    (size,) = _HEADER.unpack(header)
    if size > MAX_MESSAGE:
        raise ProtocolError(f"announced message of {size} bytes exceeds the {MAX_MESSAGE}-byte limit")
    body = _recv_exact(sock, size, at_start=False) or b""
    try:
        message = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError) as exc:
        # ValueError covers bad UTF-8, bad JSON and over-long integers; RecursionError deep nesting.
        raise ProtocolError(f"message is not valid UTF-8 JSON: {exc}") from None
    if not isinstance(message, dict):
        raise ProtocolError(f"message must be a JSON object, got {type(message).__name__}")
    return message
