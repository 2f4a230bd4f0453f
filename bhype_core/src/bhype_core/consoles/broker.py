"""The console broker: the root worker hands the unprivileged API process connected console
descriptors over a Unix socket (SCM_RIGHTS), after checking the caller with the kernel's peer
credentials.

Why a broker (docs/vms.md "Consoles and their secrets"): the VM's VNC and serial sockets, its
``state.json`` and bhyve's nmdm(4) devices stay root's alone (0600 in 0700 directories); the
API user can neither list, read nor connect to any of them, and other local accounts cannot
even reach the broker. The API names a VM and a console kind; the broker finds the endpoint
in root's own files (:mod:`bhype_core.consoles.locate`) and passes the open descriptor.

The socket is ``<data_dir>/console.sock``, ``root:<api_user's primary group>`` mode 0660 (the
data directory's own group in the production split, docs/configuration.md), put in place
atomically (bound under a temporary name, then renamed) so it is never looser; only peers whose
uid is the API user's (or root's) are answered. Protocol: one framed JSON request
(:mod:`bhype_core.auth.wire`) ``{"op": "locate"|"open", "args": {"vm": …, "kind": …}}``,
one framed answer ``{"ok": true, "result": {"console": {…}}}`` (``open``: the descriptor rides
along with it) or ``{"ok": false, "error": {"code", "message"}}``.
"""

from __future__ import annotations

import logging
import os
import socket
import socketserver
import stat
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from bhype_core.auth.peercred import peer_credentials
from bhype_core.auth.unix_server import PublishedUnixServer, listening
from bhype_core.auth.wire import ProtocolError, encode, recv_message, send_message
from bhype_core.consoles.locate import check_request, locate_console, open_console
from bhype_core.errors import BhypeError

log = logging.getLogger("bhype.consoles.broker")

SOCKET_NAME = "console.sock"
OPERATIONS = ("locate", "open")


def broker_socket(settings: Any) -> Path:
    """Where the broker listens: ``<core.data_dir>/console.sock``."""
    return Path(settings.core.data_dir) / SOCKET_NAME


def _error(code: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"code": code, "message": message}}


class _Handler(socketserver.BaseRequestHandler):
    server: ConsoleBroker

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(self.server.idle_timeout)
        try:
            peer = peer_credentials(sock)
        except (OSError, ValueError) as exc:
            log.warning("refused a connection: cannot read peer credentials: %s", exc)
            return
        if peer.uid not in self.server.allowed_uids:
            log.warning("refused a console request from uid %s (pid %s): not the API user", peer.uid, peer.pid)
            self._send(_error("forbidden_peer", f"uid {peer.uid} may not use the console broker"))
            return
        try:
            request = recv_message(sock)
        except (ProtocolError, OSError) as exc:
            self._send(_error("bad_request", str(exc)))
            return
        if request is not None:
            self.server.answer(sock, request)

    def _send(self, message: dict[str, Any]) -> None:
        try:
            send_message(self.request, message)
        except (OSError, ProtocolError):
            pass


class ConsoleBroker(PublishedUnixServer):
    """The root side (see the module docstring). ``driver`` reads VM status (a driver without
    crash listeners: the broker only looks); ``allowed_uids`` may ask; ``socket_gid`` owns the
    socket."""

    request_queue_size = 64

    def __init__(
        self,
        socket_path: Path | str,
        runtime: Any,
        driver: Any,
        allowed_uids: Iterable[int],
        socket_gid: int | None = None,
        *,
        idle_timeout: float = 30.0,
    ) -> None:
        self.socket_path = Path(socket_path)
        self.runtime = runtime
        self.driver = driver
        self.allowed_uids = frozenset(allowed_uids)
        self.idle_timeout = idle_timeout
        super().__init__(socket_path, _Handler, socket_gid)

    def prepare_path(self) -> None:
        path = self.socket_path
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            info = None
        if info is not None and stat.S_ISDIR(info.st_mode):
            raise OSError(f"{path} is a directory (planted?): remove it")
        if info is not None and stat.S_ISSOCK(info.st_mode) and listening(path):
            raise OSError(f"{path}: another console broker is already listening")
        # Anything else there (a stale socket of ours, something planted) is replaced by the
        # rename into place, never followed.

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("console broker: error while serving a connection")

    def answer(self, sock: socket.socket, request: dict[str, Any]) -> None:
        """Answer one request on ``sock`` (with the descriptor for ``open``); never raises."""
        fd: int | None = None
        try:
            op = request.get("op")
            raw = request.get("args")
            args: dict[str, Any] = raw if isinstance(raw, dict) else {}
            if op not in OPERATIONS:
                reply = _error("bad_request", f"op: must be one of {', '.join(OPERATIONS)}")
            else:
                vm, kind = check_request(args.get("vm"), args.get("kind"))
                console = locate_console(self.runtime, self.driver, vm, kind)
                if op == "open":
                    fd = open_console(console)
                    log.info("console broker: handed %s's %s console to pid %s", vm, kind,
                             peer_credentials(sock).pid)
                reply = {"ok": True, "result": {"console": console}}
        except BhypeError as exc:
            reply = _error(exc.code, exc.message)
        except (OSError, ValueError) as exc:
            reply = _error("console_unreachable", f"cannot open the console: {exc}")
        except Exception:
            log.exception("console broker: request failed")
            reply = _error("internal", "the console broker failed; see the worker's log")
        try:
            data = encode(reply)
            if fd is None:
                sock.sendall(data)
            else:
                sent = socket.send_fds(sock, [data], [fd])
                if sent < len(data):
                    sock.sendall(data[sent:])
        except (OSError, ProtocolError) as exc:
            log.warning("console broker: could not answer: %s", exc)
        finally:
            if fd is not None:
                os.close(fd)  # the API process holds its own copy now


class BrokerThread:
    """A running broker and the thread serving it; :meth:`stop` ends both."""

    def __init__(self, server: ConsoleBroker) -> None:
        self.server = server
        self.thread = threading.Thread(target=server.serve_forever, name="bhype-console-broker", daemon=True)

    def start(self) -> BrokerThread:
        self.thread.start()
        return self

    def stop(self) -> None:
        """Stop serving and remove the socket."""
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def start_console_broker(runtime: Any) -> BrokerThread | None:
    """Start the broker in this (worker) process when it is the production split: running as
    root with ``[auth] api_user`` an existing account other than root. Otherwise (one account
    runs everything) the API opens consoles itself and ``None`` is returned; so it is when
    another worker's broker already listens, or the socket cannot be made (logged).
    """
    from bhype_core.drivers.select import select_driver
    from bhype_core.private_files import api_account

    if os.geteuid() != 0:
        return None
    api = api_account(runtime.settings)
    if api is None:
        return None
    path = broker_socket(runtime.settings)
    try:
        server = ConsoleBroker(path, runtime, select_driver(runtime), [api[0], 0], api[1])
    except (OSError, BhypeError) as exc:
        log.warning("console broker not started at %s: %s", path, exc)
        return None
    log.info("console broker listening on %s for uid %s", path, api[0])
    return BrokerThread(server).start()
