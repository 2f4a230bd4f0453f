"""The privilege-separation channel: a root daemon on a Unix socket answers PAM questions for the
unprivileged API process, after checking the caller's uid with the kernel's peer credentials."""

from __future__ import annotations

import asyncio
import grp
import logging
import pwd
import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bhype_core.auth import pam
from bhype_core.auth.identity import AccountStatus, Identity, NotInBhypeGroup, account_usable, groups_of
from bhype_core.auth.login import login
from bhype_core.auth.peercred import peer_credentials
from bhype_core.auth.settings import AuthSettings, ThrottleSettings
from bhype_core.auth.throttle import MAX_KEY, MemoryThrottle, TooManyAttempts
from bhype_core.auth.unix_server import PublishedUnixServer, listening
from bhype_core.auth.wire import ProtocolError, recv_message, send_message
from bhype_core.errors import BhypeError, ConfigError, NotFound

log = logging.getLogger("bhype.auth.privileged")

# op name -> the string arguments it takes (all required, no others)
OPERATIONS: dict[str, tuple[str, ...]] = {
    "authenticate": ("username", "password"),
    "account_status": ("username",),
    "groups": ("username",),
}


class PrivilegedUnavailable(BhypeError):
    """The privileged daemon cannot be reached or did not answer in time (HTTP 503)."""

    code = "auth_service_unavailable"
    http_status = 503


class PrivilegedError(BhypeError):
    """The daemon refused the request (bad request, caller not allowed, busy, internal error)."""

    code = "auth_service_error"
    http_status = 502


def _error(code: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"code": code, "message": message}}


def validate_request(request: dict[str, Any]) -> tuple[str, dict[str, str]]:
    """Check a decoded request ``{"op": …, "args": {…}}``; raise ``ValueError`` naming the field."""
    op = request.get("op")
    if not isinstance(op, str) or op not in OPERATIONS:
        raise ValueError(f"op: must be one of {', '.join(sorted(OPERATIONS))}")
    args = request.get("args", {})
    if not isinstance(args, dict):
        raise ValueError("args: must be an object")
    wanted = OPERATIONS[op]
    for name in args:
        if name not in wanted:
            raise ValueError(f"args.{name}: not an argument of {op}")
    for name in wanted:
        value = args.get(name)
        if not isinstance(value, str) or (name == "username" and not value):
            raise ValueError(f"args.{name}: must be a {'non-empty ' if name == 'username' else ''}string")
    return op, args


def daemon_throttle_keys(settings: ThrottleSettings, account: str, address: str) -> list[tuple[str, int]]:
    """The daemon's one counter per account (it never sees client addresses): a limit of its own,
    so even a compromised API process gets ``daemon_account_failures`` guesses per window and
    account, not the ~11 per second PAM could answer (issue 11)."""
    return [(f"account:{account[:MAX_KEY]}", settings.daemon_account_failures)]


class _Handler(socketserver.BaseRequestHandler):
    server: PrivilegedServer

    def handle(self) -> None:
        sock: socket.socket = self.request
        sock.settimeout(self.server.idle_timeout)
        try:
            peer = peer_credentials(sock)
        except (OSError, ValueError) as exc:
            log.warning("refused a connection: cannot read peer credentials: %s", exc)
            self._reply(_error("peer_unknown", "cannot determine the caller's credentials"))
            return
        if peer.uid not in self.server.allowed_uids:
            log.warning("refused a connection from uid %s (pid %s): not allowed", peer.uid, peer.pid)
            self._reply(_error("forbidden_peer", f"uid {peer.uid} may not use this socket"))
            return
        while True:
            try:
                request = recv_message(sock)
            except ProtocolError as exc:
                # Framing is lost after garbage: answer once, then close.
                self._reply(_error("bad_request", str(exc)))
                return
            except OSError:  # timeout or reset: nothing left to answer
                return
            if request is None:
                return
            if not self._reply(self.server.dispatch(request)):
                return

    def _reply(self, response: dict[str, Any]) -> bool:
        try:
            send_message(self.request, response)
            return True
        except (OSError, ProtocolError):
            return False


class PrivilegedServer(PublishedUnixServer):
    """The daemon side. Runs as root; answers only peers whose uid is in ``allowed_uids``.

    The socket is created with mode 0660 and group ``socket_gid``, atomically (bound under a
    temporary name, then renamed), so it is never reachable with looser permissions.
    At most ``max_connections`` conversations run at once; more are told "busy". Failed
    ``authenticate`` calls are throttled per account by the daemon itself
    (``[auth.throttle] daemon_account_failures`` per ``window_seconds``), whatever the caller does.
    """

    # listen(2) backlog: a connect(2) to a full Unix-socket backlog fails at once with EAGAIN
    # for clients with a timeout, so keep room for bursts of logins.
    request_queue_size = 128

    def __init__(
        self,
        socket_path: Path | str,
        settings: AuthSettings,
        allowed_uids: Iterable[int],
        socket_gid: int | None = None,
        *,
        max_connections: int = 64,
        idle_timeout: float = 30.0,
        floor: pam.FailureFloor | None = None,
        account_check: Callable[..., AccountStatus] = account_usable,
    ) -> None:
        self.settings = settings
        self.allowed_uids = frozenset(allowed_uids)
        self.idle_timeout = idle_timeout
        self.floor = floor
        self.account_check = account_check
        self.throttle = MemoryThrottle(settings.throttle, keys=daemon_throttle_keys)
        self._slots = threading.BoundedSemaphore(max_connections)
        super().__init__(socket_path, _Handler, socket_gid)

    @classmethod
    def from_settings(cls, settings: AuthSettings, **options: Any) -> PrivilegedServer:
        """Build from ``[auth]``: resolves ``api_user`` and ``privileged_socket_group`` now."""
        try:
            uid = pwd.getpwnam(settings.api_user).pw_uid
        except KeyError:
            raise ConfigError(f"auth.api_user: no local user named {settings.api_user!r}") from None
        try:
            gid = grp.getgrnam(settings.privileged_socket_group).gr_gid
        except KeyError:
            raise ConfigError(
                f"auth.privileged_socket_group: no local group named {settings.privileged_socket_group!r}"
            ) from None
        return cls(settings.privileged_socket, settings, [uid], gid, **options)

    def prepare_path(self) -> None:
        path = self.socket_path
        if path.is_socket():
            if listening(path):
                raise ConfigError(f"{path}: another privileged daemon is already listening")
            path.unlink()  # stale socket from a crashed daemon
        elif path.exists() or path.is_symlink():
            raise ConfigError(f"{path}: exists and is not a socket; refusing to replace it")
        # /var/run is emptied at boot on both systems: create the directory (root, 0755).
        path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            try:
                request.settimeout(1.0)
                send_message(request, _error("busy", "too many concurrent requests; retry shortly"))
            except (OSError, ProtocolError):
                pass
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.exception("privileged daemon: error while serving a connection")

    def dispatch(self, request: dict[str, Any]) -> dict[str, Any]:
        """Answer one decoded request; never raises."""
        try:
            op, args = validate_request(request)
        except ValueError as exc:
            return _error("bad_request", str(exc))
        try:
            if op == "authenticate":
                return self._authenticate(args["username"], args["password"])
            if op == "account_status":
                status = self.account_check(args["username"], pam_service=self.settings.pam_service)
                return {"ok": True, "result": status.to_dict()}
            try:
                return {"ok": True, "result": {"groups": list(groups_of(args["username"]))}}
            except (KeyError, ValueError):
                return _error("not_found", f"no local user named {args['username']!r}")
        except Exception:
            log.exception("privileged daemon: %s failed", op)
            return _error("internal", f"{op} failed inside the privileged daemon; see its log")

    def _authenticate(self, username: str, password: str) -> dict[str, Any]:
        """One login behind the daemon's own per-account throttle; every failure is counted."""
        wait = self.throttle.retry_after(username, "")
        if wait > 0:
            refused = TooManyAttempts(wait)
            log.warning("throttled authenticate for %r: retry in %s s", username[:64], refused.retry_after)
            return {"ok": False, "error": {"code": refused.code, "message": refused.message,
                                           "retry_after": refused.retry_after}}
        try:
            identity = login(username, password, self.settings, self.floor)
        except pam.LoginFailed as exc:
            self.throttle.record_failure(username, "")
            return _error(exc.code, exc.message)
        return {"ok": True, "result": {"identity": identity.to_dict()}}


def _connect(sock: socket.socket, path: str, timeout: float) -> None:
    """connect(2) that waits out a momentarily full backlog (EAGAIN) until ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            sock.connect(path)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise TimeoutError(f"backlog of {path} stayed full") from None
            time.sleep(0.01)


class PrivilegedClient:
    """The API process's side: one short connection per call, every step under ``timeout``."""

    def __init__(self, socket_path: Path | str, timeout: float = 10.0) -> None:
        self.socket_path = str(socket_path)
        self.timeout = timeout

    @classmethod
    def from_settings(cls, settings: AuthSettings) -> PrivilegedClient:
        """A client for ``auth.privileged_socket`` with ``auth.privileged_timeout``."""
        return cls(settings.privileged_socket, settings.privileged_timeout)

    def call(self, op: str, **args: str) -> dict[str, Any]:
        """Send one request and return its ``result``; daemon refusals become bHype errors."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(self.timeout)
            try:
                _connect(sock, self.socket_path, self.timeout)
                try:
                    send_message(sock, {"op": op, "args": args})
                except (BrokenPipeError, ConnectionResetError):
                    # The daemon answers a refused peer before reading and hangs up; its
                    # answer is still waiting in our receive queue.
                    pass
                response = recv_message(sock)
            except TimeoutError:
                raise PrivilegedUnavailable(
                    f"authentication service did not answer within {self.timeout} s"
                ) from None
            except (OSError, ProtocolError) as exc:
                raise PrivilegedUnavailable(
                    f"authentication service unreachable at {self.socket_path}: {exc}"
                ) from None
        if response is None:
            raise PrivilegedUnavailable("authentication service closed the connection without answering")
        if response.get("ok") is True and isinstance(response.get("result"), dict):
            return response["result"]
        error = response.get("error")
        if not isinstance(error, dict):
            error = {}
        code, message = str(error.get("code", "")), str(error.get("message", "malformed answer"))
        if code == pam.LoginFailed.code:
            raise pam.LoginFailed()
        if code == NotInBhypeGroup.code:
            raise NotInBhypeGroup(message)
        if code == TooManyAttempts.code:
            retry_after = error.get("retry_after")
            raise TooManyAttempts(float(retry_after) if isinstance(retry_after, (int, float)) else 1.0)
        if code == "not_found":
            raise NotFound(message)
        raise PrivilegedError(f"authentication service refused {op} ({code or 'no code'}): {message}")

    def authenticate(self, username: str, password: str) -> Identity:
        """PAM login through the daemon; raises ``LoginFailed``, or ``TooManyAttempts`` when the
        daemon's own per-account limit refuses it."""
        result = self.call("authenticate", username=username, password=password)
        try:
            return Identity.from_dict(result.get("identity") or {})
        except ValueError as exc:
            raise PrivilegedError(f"authentication service sent a bad identity: {exc}") from None

    def account_status(self, username: str) -> AccountStatus:
        """Periodic re-check: does the OS account still exist, unlocked and unexpired?"""
        result = self.call("account_status", username=username)
        return AccountStatus(bool(result.get("usable")), str(result.get("reason", "")))

    def groups(self, username: str) -> tuple[str, ...]:
        """The user's group names (primary first); ``NotFound`` for an unknown user."""
        groups = self.call("groups", username=username).get("groups")
        if not isinstance(groups, list):
            raise PrivilegedError("authentication service sent no group list")
        return tuple(str(g) for g in groups)

    async def authenticate_async(self, username: str, password: str) -> Identity:
        """:meth:`authenticate` without blocking the event loop."""
        return await asyncio.to_thread(self.authenticate, username, password)

    async def account_status_async(self, username: str) -> AccountStatus:
        """:meth:`account_status` without blocking the event loop."""
        return await asyncio.to_thread(self.account_status, username)

    async def groups_async(self, username: str) -> tuple[str, ...]:
        """:meth:`groups` without blocking the event loop."""
        return await asyncio.to_thread(self.groups, username)
