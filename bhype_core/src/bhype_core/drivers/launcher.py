"""The supervisor launcher: a pre-started interpreter that forks one VM supervisor per start.

``python -m bhype_core.drivers.launcher`` with, as its stdin, one end of a unix stream socket
pair whose other end only the worker process that started it holds (``launcher_client``):
no path in the file system, so nobody else can reach it (issue 15). Exec'ing a fresh
supervisor costs an interpreter start-up and its imports on every VM start (hundreds of
milliseconds on a loaded 2-core host); a fork of this already-imported process costs a few.

Protocol. Each start sends one byte on the channel with, attached (SCM_RIGHTS, unix(4) and
unix(7)), one end of a fresh socket pair: the request's connection. The launcher forks a
handler for it and goes back to waiting; the handler

1. answers ``+`` at once (the request arrived: from now on the start is under way, so a
   client that loses the connection must not start the VM a second way);
2. reads one JSON line ``{"vm_dir": ..., "python": ..., "env": {...}}``: the VM directory as
   the driver names it, the interpreter the driver would have exec'd and the driver process's
   environment at this start (an exec'd supervisor would have inherited it);
3. takes the command line ``python -m bhype_core.drivers.supervisor VM_DIR`` (:mod:`proctitle`;
   every status read recognises the supervisor by it) or, when it cannot, answers
   ``{"fallback": reason}`` and the driver execs the supervisor instead;
4. leads a new session (setsid) and daemonizes the supervisor as the exec'd command does,
   minus the fork the handler already is (:func:`~bhype_core.drivers.supervisor.launch_verdict`;
   the daemon closes every inherited descriptor), and answers ``{"verdict": {...}}``.

The supervisor is a child of the handler, re-parented to init when the handler exits, in the
session the handler created (no controlling terminal, not its leader): it
outlives the handler, the launcher and the worker, as an exec'd one does. The launcher exits
when its channel reaches end-of-file, i.e. when the worker that started it ended (however it
ended: the kernel closes the worker's descriptors), so a new worker starts a launcher running
its own code. The launcher stays single-threaded: it forks.
"""

from __future__ import annotations

import json
import os
import select
import socket
import sys
from pathlib import Path
from typing import Any

from bhype_core.drivers import supervisor  # imported once here: what every fork saves
from bhype_core.drivers.proctitle import set_title
from bhype_core.drivers.state import SUPERVISOR_MODULE

MODULE = "bhype_core.drivers.launcher"
REAP_EVERY = 5.0  # seconds between reaps of ended handlers while no request comes
REQUEST_TIMEOUT = 30.0  # seconds a client may take to send its request line
MAX_REQUEST = 4 * 1024 * 1024  # bytes: a request line (mostly the environment)


def reap() -> None:
    """Collect the exit status of every handler that ended (no zombies)."""
    while True:
        try:
            pid, _status = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def serve(channel: socket.socket) -> int:
    """Fork a handler for every connection received on ``channel`` until it is closed."""
    while True:
        ready, _, _ = select.select([channel], [], [], REAP_EVERY)
        reap()
        if not ready:
            continue
        try:
            message, fds, _flags, _address = socket.recv_fds(channel, 1, 4)
        except OSError:
            return 0
        if not message:  # end-of-file: the worker ended
            return 0
        for extra in fds[1:]:
            os.close(extra)
        if not fds:
            continue
        pid = os.fork()
        if pid == 0:  # pragma: no cover - runs in the handler (a forked process)
            code = supervisor.EX_SOFTWARE
            try:
                channel.close()
                code = handle(socket.socket(fileno=fds[0]))
            except BaseException:  # noqa: BLE001 - a handler's failure must never reach the launcher's loop
                code = supervisor.EX_SOFTWARE
            finally:
                os._exit(code)
        os.close(fds[0])


def read_request(conn: socket.socket) -> dict[str, Any]:
    """The request's JSON line (``ValueError`` when it is not one)."""
    conn.settimeout(REQUEST_TIMEOUT)
    data = b""
    while b"\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
        if len(data) > MAX_REQUEST:
            raise ValueError("request too long")
    request = json.loads(data.split(b"\n", 1)[0])
    if not isinstance(request, dict):
        raise ValueError("request is not an object")
    vm_dir, python, env = request.get("vm_dir"), request.get("python"), request.get("env")
    if not (isinstance(vm_dir, str) and os.path.isabs(vm_dir) and isinstance(python, str) and python):
        raise ValueError("vm_dir must be an absolute path and python a program")
    if not (isinstance(env, dict) and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())):
        raise ValueError("env must map names to strings")
    return request


def answer(conn: socket.socket, payload: dict[str, Any]) -> None:
    conn.sendall(json.dumps(payload).encode() + b"\n")


def handle(conn: socket.socket) -> int:
    """Serve one start request (module docstring); runs in a forked handler."""
    conn.sendall(b"+")
    try:
        request = read_request(conn)
    except (OSError, ValueError) as exc:
        answer(conn, {"fallback": f"bad request: {exc}"})
        return 2
    vm_dir = request["vm_dir"]
    # What the exec'd supervisor would have: the driver's environment (a test's PATH, the
    # fake tools' variables), files private to root (supervisor.main), its command line.
    os.environ.clear()
    os.environ.update(request["env"])
    os.umask(0o077)
    if not set_title([request["python"], "-m", SUPERVISOR_MODULE, vm_dir]):
        answer(conn, {"fallback": "cannot give the supervisor its command line here"})
        return 0
    resolved, config = supervisor.load_config(Path(vm_dir))
    if config is None:
        answer(conn, {"verdict": {"ok": False, "message": f"no valid supervisor.json in {resolved}",
                                  "exit_status": 2}})
        return 0
    os.setsid()  # the supervisor's own session, as the exec'd launcher gives it (its first fork)
    answer(conn, {"verdict": supervisor.launch_verdict(resolved, config, detached=True)})
    return 0


def main() -> int:
    """Entry point: serve the channel on stdin (the worker's socket pair) until it closes."""
    try:
        channel = socket.socket(fileno=os.dup(0))
    except OSError:
        print("bhype launcher: stdin must be the worker's unix socket", file=sys.stderr)
        return 2
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)  # the channel lives on as its own descriptor; forks get no stdin from it
    os.close(null)
    set_title([sys.executable, "-m", MODULE])  # drop the empty arguments that reserve room
    return serve(channel)


if __name__ == "__main__":
    sys.exit(main())
