"""The privileged authentication channel: a real Unix socket daemon, real peer credentials, clients
running as real unprivileged users (forked children that drop to their uid)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from bhype_core.auth import pam
from bhype_core.auth.pam import FailureFloor
from bhype_core.auth.peercred import parse_xucred, peer_credentials
from bhype_core.auth.privileged import PrivilegedClient, PrivilegedServer
from bhype_core.auth.wire import MAX_MESSAGE, encode, recv_message
from bhype_core.errors import BhypeError, ConfigError
from bhype_core.testing.users import LocalUser


@dataclass
class Daemon:
    server: PrivilegedServer
    path: Path
    thread: threading.Thread


def start_daemon(path: Path, settings, allowed_uids, gid=None, **options) -> Daemon:
    server = PrivilegedServer(path, settings, allowed_uids, gid, floor=FailureFloor(seconds=0.0), **options)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    return Daemon(server, path, thread)


def stop_daemon(daemon: Daemon) -> None:
    daemon.server.shutdown()
    daemon.server.server_close()
    daemon.thread.join(timeout=5)


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    # Not under pytest's tmp_path: its parents are 0700, and the forked clients run as other users.
    directory = Path(tempfile.mkdtemp(prefix="bhype-priv-"))
    directory.chmod(0o755)
    yield directory
    shutil.rmtree(directory, ignore_errors=True)


@dataclass
class Channel:
    daemon: Daemon
    api: LocalUser  # the API user: allowed
    intruder: LocalUser  # in the socket group, but not the API user
    outsider: LocalUser  # not even in the socket group
    socket_gid: int


@pytest.fixture
def channel(auth_env, socket_dir) -> Iterator[Channel]:
    users = auth_env.users
    socket_group = users.group()
    api = users(groups=[socket_group])
    intruder = users(groups=[socket_group])
    outsider = users()
    daemon = start_daemon(socket_dir / "auth.sock", auth_env.settings, [api.uid], socket_group.gid)
    try:
        yield Channel(daemon, api, intruder, outsider, socket_group.gid)
    finally:
        stop_daemon(daemon)


def run_as(user: LocalUser, action: Callable[[], object]) -> dict:
    """Run ``action`` in a forked child that has dropped to ``user``'s uid, gid and groups;
    return ``{"result": …}`` or ``{"error": class name, "code": …, "message": …}``."""
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: never return into pytest
        status = 1
        try:
            os.close(read_end)
            os.setgroups(os.getgrouplist(user.name, user.gid))
            os.setgid(user.gid)
            os.setuid(user.uid)
            try:
                outcome = {"result": action()}
            except BhypeError as exc:
                outcome = {"error": type(exc).__name__, "code": exc.code, "message": exc.message}
            os.write(write_end, json.dumps(outcome, default=str).encode())
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        data = pipe.read()
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, f"child failed: {data!r}"
    return json.loads(data)


def test_allowed_uid_gets_answers(channel, auth_env):
    target = auth_env.users(groups=[auth_env.operators])
    client = PrivilegedClient(channel.daemon.path, timeout=10)

    def calls():
        return {
            "identity": client.authenticate(target.name, target.password).to_dict(),
            "status": client.account_status(target.name).to_dict(),
            "groups": list(client.groups(target.name)),
            "who": os.getuid(),
        }

    answer = run_as(channel.api, calls)["result"]
    assert answer["who"] == channel.api.uid  # the call really came from the unprivileged user
    assert answer["identity"] == {
        "username": target.name,
        "uid": target.uid,
        "groups": [target.primary_group, auth_env.operators.name],
        "role": "operator",
    }
    assert answer["status"] == {"usable": True, "reason": ""}
    assert answer["groups"] == [target.primary_group, auth_env.operators.name]


def test_refusals_through_the_channel(channel, auth_env):
    users = auth_env.users
    target = users(groups=[auth_env.operators])
    outsider = users(groups=[users.group()])
    client = PrivilegedClient(channel.daemon.path, timeout=10)

    wrong = run_as(channel.api, lambda: client.authenticate(target.name, "wrong"))
    unknown = run_as(channel.api, lambda: client.authenticate("bht_no_such_user", "wrong"))
    no_group = run_as(channel.api, lambda: client.authenticate(outsider.name, outsider.password))
    missing = run_as(channel.api, lambda: client.groups("bht_no_such_user"))

    # A right password for an account in no bHype group is no different (issue 11): the daemon
    # is no password oracle for the host's other accounts, even for a compromised API process.
    assert (
        wrong
        == unknown
        == no_group
        == {"error": "LoginFailed", "code": "login_failed", "message": pam.GENERIC_FAILURE}
    )
    assert missing["error"] == "NotFound"

    users.lock(target)
    locked = run_as(channel.api, lambda: client.account_status(target.name).to_dict())
    assert locked["result"] == {"usable": False, "reason": "locked"}
    users.delete(target)
    deleted = run_as(channel.api, lambda: client.account_status(target.name).to_dict())
    assert deleted["result"] == {"usable": False, "reason": "no such user"}


def test_other_uid_is_refused_by_peer_credentials(channel, auth_env):
    target = auth_env.users(groups=[auth_env.operators])
    client = PrivilegedClient(channel.daemon.path, timeout=10)

    intruder = run_as(channel.intruder, lambda: client.authenticate(target.name, target.password).to_dict())
    assert intruder["error"] == "PrivilegedError"
    assert "forbidden_peer" in intruder["message"] and f"uid {channel.intruder.uid}" in intruder["message"]

    # Root is not the API user either: refused the same way.
    with pytest.raises(BhypeError, match="forbidden_peer"):
        client.groups(target.name)

    # Not in the socket's group: the 0660 mode stops the connection itself.
    outsider = run_as(channel.outsider, lambda: client.groups(target.name))
    assert outsider["error"] == "PrivilegedUnavailable" and "Permission denied" in outsider["message"]

    # The daemon is unharmed and still answers its user.
    assert run_as(channel.api, lambda: client.groups(target.name))["result"][1] == auth_env.operators.name


def test_socket_is_0660_with_the_configured_group(channel):
    info = channel.daemon.path.stat()
    assert stat.S_ISSOCK(info.st_mode)
    assert stat.S_IMODE(info.st_mode) == 0o660
    assert info.st_gid == channel.socket_gid


@pytest.fixture
def own_daemon(auth_env, socket_dir) -> Iterator[Daemon]:
    """A daemon that answers this test process's uid, to feed it raw bytes."""
    daemon = start_daemon(socket_dir / "raw.sock", auth_env.settings, [os.geteuid()])
    yield daemon
    stop_daemon(daemon)


def raw_exchange(path: Path, payload: bytes, *, close_write: bool = True) -> dict | None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(path))
        sock.sendall(payload)
        if close_write:
            sock.shutdown(socket.SHUT_WR)
        return recv_message(sock)


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (struct.pack("!I", 5) + b"hello", "not valid UTF-8 JSON"),
        (struct.pack("!I", 2) + b"\xff\xfe", "not valid UTF-8 JSON"),
        (struct.pack("!I", 10), "closed after 0 of 10 bytes"),
        (struct.pack("!I", 10) + b'{"op', "closed after 4 of 10 bytes"),
        (struct.pack("!I", MAX_MESSAGE + 1), "exceeds"),
        (struct.pack("!I", 7) + b"[1,2,3]", "must be a JSON object"),
        (struct.pack("!I", 20000) + b"[" * 20000, "not valid UTF-8 JSON"),
        (b"\x00\x00", "closed after 2 of 4 bytes"),
    ],
)
def test_garbage_gets_a_clear_error_and_never_kills_the_daemon(own_daemon, payload, expected):
    answer = raw_exchange(own_daemon.path, payload)
    assert answer["ok"] is False and answer["error"]["code"] == "bad_request"
    assert expected in answer["error"]["message"]
    assert own_daemon.thread.is_alive()
    assert PrivilegedClient(own_daemon.path).call("groups", username="root") == {"groups": ["root"]}


@pytest.mark.parametrize(
    ("request_", "expected"),
    [
        ({"op": "reboot"}, "op: must be one of account_status, authenticate, groups"),
        ({"args": {}}, "op: must be one of"),
        ({"op": "groups", "args": []}, "args: must be an object"),
        ({"op": "groups", "args": {}}, "args.username: must be a non-empty string"),
        ({"op": "groups", "args": {"username": 7}}, "args.username: must be a non-empty string"),
        ({"op": "authenticate", "args": {"username": "a"}}, "args.password: must be a string"),
        (
            {"op": "groups", "args": {"username": "root", "shell": "x"}},
            "args.shell: not an argument of groups",
        ),
    ],
)
def test_malformed_requests_get_errors_naming_the_field(own_daemon, request_, expected):
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(str(own_daemon.path))
        sock.sendall(encode(request_))
        answer = recv_message(sock)
        assert answer == {
            "ok": False,
            "error": {"code": "bad_request", "message": answer["error"]["message"]},
        }
        assert expected in answer["error"]["message"]
        # A well-framed bad request keeps the conversation open: the next request is answered.
        sock.sendall(encode({"op": "groups", "args": {"username": "root"}}))
        assert recv_message(sock) == {"ok": True, "result": {"groups": ["root"]}}


def test_random_bytes_and_abrupt_disconnects(own_daemon):
    for seed in range(20):
        payload = os.urandom(1 + seed * 37)
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(10)
            sock.connect(str(own_daemon.path))
            sock.sendall(payload)  # and close without reading
    assert PrivilegedClient(own_daemon.path).groups("root") == ("root",)


def test_busy_daemon_says_so(auth_env, socket_dir):
    daemon = start_daemon(socket_dir / "busy.sock", auth_env.settings, [os.geteuid()], max_connections=1)
    try:
        holder = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        holder.connect(str(daemon.path))  # accepted first, holds the only slot while idle
        client = PrivilegedClient(daemon.path, timeout=10)
        with pytest.raises(BhypeError, match="busy"):
            client.groups("root")
        holder.close()
        deadline = time.monotonic() + 10
        while True:  # the slot frees once the handler sees the close
            try:
                assert client.groups("root") == ("root",)
                break
            except BhypeError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
    finally:
        stop_daemon(daemon)


def test_client_reports_an_absent_daemon(socket_dir):
    client = PrivilegedClient(socket_dir / "absent.sock", timeout=2)
    with pytest.raises(BhypeError) as caught:
        client.groups("root")
    assert caught.value.code == "auth_service_unavailable" and caught.value.http_status == 503


def test_second_daemon_refuses_to_steal_the_socket(own_daemon, auth_env):
    with pytest.raises(ConfigError, match="already listening"):
        PrivilegedServer(own_daemon.path, auth_env.settings, [os.geteuid()])
    # The failed start did not remove the running daemon's socket.
    assert PrivilegedClient(own_daemon.path).groups("root") == ("root",)


def test_stale_socket_is_replaced_and_other_files_are_not(auth_env, socket_dir):
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    stale.bind(str(socket_dir / "stale.sock"))
    stale.close()  # a socket file nobody listens on, as after a crash
    daemon = start_daemon(socket_dir / "stale.sock", auth_env.settings, [os.geteuid()])
    try:
        assert PrivilegedClient(daemon.path).groups("root") == ("root",)
    finally:
        stop_daemon(daemon)
    assert not (socket_dir / "stale.sock").exists()  # removed on close

    (socket_dir / "file.sock").write_text("not a socket")
    with pytest.raises(ConfigError, match="not a socket"):
        PrivilegedServer(socket_dir / "file.sock", auth_env.settings, [os.geteuid()])
    assert (socket_dir / "file.sock").read_text() == "not a socket"


def test_from_settings_names_a_missing_api_user(auth_env, socket_dir):
    settings = auth_env.settings.model_copy(
        update={"api_user": "bht_no_such_user", "privileged_socket": socket_dir / "s.sock"}
    )
    with pytest.raises(ConfigError, match="auth.api_user"):
        PrivilegedServer.from_settings(settings)


def test_peer_credentials_of_a_real_socket_pair():
    left, right = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with left, right:
        peer = peer_credentials(left)
    assert (peer.uid, peer.gid, peer.pid) == (os.geteuid(), os.getegid(), os.getpid())


def test_parse_freebsd_xucred():
    # struct xucred as unix(4)/<sys/ucred.h> lay it out on amd64: version 0, uid 1001,
    # 2 groups (1001, 0), 16-slot group array, then the 8-byte cr_pid union.
    groups = struct.pack("=16I", 1001, 0, *([0] * 14))
    sample = struct.pack("=IIhxx", 0, 1001, 2) + groups + b"\0" * 4 + struct.pack("=q", 4242)
    peer = parse_xucred(sample)
    assert (peer.uid, peer.gid) == (1001, 1001)
    with pytest.raises(ValueError, match="version"):
        parse_xucred(struct.pack("=IIhxx", 7, 1001, 2) + groups)
    with pytest.raises(ValueError, match="too short"):
        parse_xucred(b"\0" * 6)


def test_daemon_process_serves_its_user_and_stops_on_sigterm(auth_env, socket_dir):
    users = auth_env.users
    socket_group = users.group()
    api = users(groups=[socket_group])
    target = users(groups=[auth_env.admins])
    path = socket_dir / "run" / "auth.sock"  # the daemon creates the missing directory
    config = socket_dir / "bhype.toml"
    config.write_text(
        "[auth]\n"
        f'pam_service = "{auth_env.service}"\n'
        f'admin_groups = ["{auth_env.admins.name}"]\n'
        f'privileged_socket = "{path}"\n'
        f'privileged_socket_group = "{socket_group.name}"\n'
        f'api_user = "{api.name}"\n'
    )
    log = socket_dir / "daemon.log"
    with open(log, "wb") as output:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "bhype_core.auth.daemon", "--config", str(config)],
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 20
        while not path.is_socket():
            assert daemon.poll() is None, f"daemon exited: {log.read_text()}"
            assert time.monotonic() < deadline, f"no socket after 20 s: {log.read_text()}"
            time.sleep(0.05)
        client = PrivilegedClient(path, timeout=10)
        answer = run_as(api, lambda: client.authenticate(target.name, target.password).to_dict())
        assert answer["result"]["role"] == "admin" and answer["result"]["username"] == target.name

        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=15) == 0
        assert not path.exists()
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()


def test_daemon_process_reports_bad_configuration(socket_dir):
    config = socket_dir / "bhype.toml"
    config.write_text(
        f'[auth]\napi_user = "bht_no_such_user"\nprivileged_socket = "{socket_dir / "x.sock"}"\n'
    )
    result = subprocess.run(
        [sys.executable, "-m", "bhype_core.auth.daemon", "--config", str(config)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "auth.api_user: no local user named 'bht_no_such_user'" in result.stderr
