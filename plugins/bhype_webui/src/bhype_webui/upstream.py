"""Opening a VM's console endpoint as an async byte stream: loopback TCP, unix socket, or tty.

Endpoints come from the driver's ``VMStatus.consoles`` (``{"host", "port"}``, ``{"unix"}`` or,
for bhyve's serial console, ``{"device"}`` = the B side of an nmdm(4) pair). A TCP endpoint
must be a loopback address: consoles are never reached beyond this host. The tty is opened as
FreeBSD reference 9.1 says: ``O_RDWR | O_NOCTTY | O_NONBLOCK``, raw mode through termios(4).

When ``bhype serve`` is not root and a root worker runs, every console is root's alone: the
endpoint then carries a :class:`BrokerRoute`, and opening it asks the worker's console broker
for a connected descriptor (``bhype_core.consoles``, docs/vms.md "Consoles and their secrets").
"""

from __future__ import annotations

import asyncio
import errno
import ipaddress
import os
import socket
import termios
import tty
from dataclasses import dataclass
from typing import Any

from bhype_webui import chunk_stream
from bhype_webui.byte_stream import READ_SIZE, ByteStream

__all__ = ["ByteStream", "BrokerRoute", "Endpoint", "EndpointError", "TtyStream", "open_endpoint"]

CONNECT_TIMEOUT = 10.0


class EndpointError(Exception):
    """The console endpoint is malformed, not on loopback, or cannot be opened."""


@dataclass(frozen=True)
class BrokerRoute:
    """Open the console through the root worker's broker at ``socket``: VM ``vm``'s ``kind``."""

    socket: str
    vm: str
    kind: str


@dataclass(frozen=True)
class Endpoint:
    """Where a console listens: exactly one of ``unix``, ``device`` or ``host``+``port``; and,
    when this process may not open it itself, the broker ``route`` that opens it."""

    host: str | None = None
    port: int | None = None
    unix: str | None = None
    device: str | None = None
    route: BrokerRoute | None = None

    @classmethod
    def from_console(cls, console: dict[str, Any]) -> Endpoint:
        """Validate one entry of ``VMStatus.consoles``.

        :raises EndpointError: none or several kinds of address, or a non-loopback host.
        """
        if console.get("unix"):
            return cls(unix=str(console["unix"]))
        if console.get("device"):
            return cls(device=str(console["device"]))
        host, port = console.get("host"), console.get("port")
        if not host or not isinstance(port, int) or not 0 < port < 65536:
            raise EndpointError(f"console endpoint has no usable address: {console!r}")
        try:
            loopback = ipaddress.ip_address(str(host)).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise EndpointError(f"console endpoint {host}:{port} is not a numeric loopback address")
        return cls(host=str(host), port=port)

    def describe(self) -> str:
        """For logs and error messages."""
        return self.unix or self.device or f"{self.host}:{self.port}"


class TtyStream(ByteStream):
    """A terminal device in raw mode, read and written without blocking the event loop."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.loop = asyncio.get_running_loop()
        self.buffer = bytearray()
        self.closed = False

    @classmethod
    def open(cls, path: str) -> TtyStream:
        """Open ``path`` (the nmdm B side) the way reference 9.1 prescribes."""
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            tty.setraw(fd, termios.TCSANOW)  # cfmakeraw: no echo, no line editing, 8 bits
        except termios.error:
            os.close(fd)
            raise
        return cls(fd)

    async def _wait(self, add: Any, remove: Any) -> None:
        ready: asyncio.Future[None] = self.loop.create_future()

        def wake() -> None:
            if not ready.done():  # the reader may fire again before the waiter runs
                ready.set_result(None)

        add(self.fd, wake)
        try:
            await ready
        finally:
            remove(self.fd)

    async def read(self, size: int = READ_SIZE) -> bytes:
        if self.buffer:
            data, self.buffer = bytes(self.buffer[:size]), self.buffer[size:]
            return data
        while not self.closed:
            try:
                return os.read(self.fd, size)
            except BlockingIOError:
                await self._wait(self.loop.add_reader, self.loop.remove_reader)
            except OSError as exc:
                # EIO: the other side of a pty (or nmdm A side) is closed: end of stream.
                if exc.errno == errno.EIO:
                    return b""
                raise
        return b""

    async def readexactly(self, size: int) -> bytes:
        while len(self.buffer) < size:
            chunk = await self.read(READ_SIZE)
            if not chunk:
                raise asyncio.IncompleteReadError(bytes(self.buffer), size)
            self.buffer += chunk
        data, self.buffer = bytes(self.buffer[:size]), self.buffer[size:]
        return data

    async def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[os.write(self.fd, view) :]
            except BlockingIOError:
                await self._wait(self.loop.add_writer, self.loop.remove_writer)

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            os.close(self.fd)


async def _open_through_broker(endpoint: Endpoint, route: BrokerRoute) -> ByteStream:
    from bhype_core.plugin_api import ConsoleBrokerClient

    fd, console = await asyncio.to_thread(ConsoleBrokerClient(route.socket).open, route.vm, route.kind)
    if console.get("device"):
        return TtyStream(fd)  # opened non-blocking and raw by the broker
    sock = socket.socket(fileno=fd)  # a unix or loopback TCP stream socket
    try:
        sock.setblocking(False)
        return await chunk_stream.adopt(sock, unix=sock.family == socket.AF_UNIX)
    except BaseException:
        sock.close()
        raise


async def open_endpoint(endpoint: Endpoint) -> ByteStream:
    """Connect to ``endpoint`` (through the broker when it carries a route).

    :raises EndpointError: it refused, timed out, or does not exist.
    :raises BhypeError: the broker says the VM or console is gone, or is unavailable.
    """
    if endpoint.route is not None:
        try:
            return await _open_through_broker(endpoint, endpoint.route)
        except OSError as exc:
            raise EndpointError(f"cannot use the console at {endpoint.describe()}: {exc}") from None
    try:
        if endpoint.device:
            return TtyStream.open(endpoint.device)
        if endpoint.unix:
            connect = chunk_stream.connect_unix(endpoint.unix)
        else:
            assert endpoint.host is not None and endpoint.port is not None
            connect = chunk_stream.connect_tcp(endpoint.host, endpoint.port)
        return await asyncio.wait_for(connect, CONNECT_TIMEOUT)
    except (OSError, TimeoutError, termios.error) as exc:
        raise EndpointError(f"cannot open the console at {endpoint.describe()}: {exc}") from None
