"""Where a running VM's console is, and opening it: the root side of the console broker.

Runs in the worker's process (root), which can read the supervisor's ``state.json`` and
connect to the VM's private sockets. Everything it acts on comes from root's own files: the
VM directory of a configured datastore and the console entry the supervisor wrote there, never
a path or address named by the caller (the API process only names a VM and a console kind).
"""

from __future__ import annotations

import ipaddress
import os
import socket
import termios
import tty
from typing import Any

from sqlmodel import Session

from bhype_core.errors import Conflict, NotFound, ValidationErrors
from bhype_core.spec import NAME_RE

KINDS = ("vnc", "serial")
CONNECT_TIMEOUT = 10.0
# What of a console entry the API process gets: how to talk to it, not where logs lie.
PUBLIC_KEYS = ("unix", "device", "host", "port", "password")


def check_request(vm: Any, kind: Any) -> tuple[str, str]:
    """The VM name and console kind of a request, validated.

    :raises ValidationErrors: naming ``vm`` or ``kind``.
    """
    errors = ValidationErrors()
    if not isinstance(vm, str) or not NAME_RE.match(vm):
        errors.add("vm", "must be a VM name")
    if kind not in KINDS:
        errors.add("kind", f"must be one of {', '.join(KINDS)}")
    errors.raise_if_any()
    return vm, kind


def locate_console(runtime: Any, driver: Any, vm_name: str, kind: str) -> dict[str, Any]:
    """The console entry (``unix``, ``device`` or ``host``+``port``, and ``password``) of VM
    ``vm_name``'s ``kind`` console, read by ``driver`` from the VM's own directory.

    :raises NotFound: no such VM, or it has no such console. :raises Conflict: not running.
    """
    from bhype_core.vm.records import find_vm
    from bhype_core.vm.services import open_datastore

    with Session(runtime.engine) as db:
        row = find_vm(db, vm_name)
    if row is None:
        raise NotFound(f"no VM named {vm_name!r}")
    spec = row.spec_model()
    vm_dir = open_datastore(runtime, row.datastore).vm_dir(row.name)
    status = driver.status(spec, vm_dir)
    if not status.active:
        raise Conflict(f"VM {vm_name} is {status.state.value}; start it to use its console")
    console = status.consoles.get(kind)
    if not console:
        raise NotFound(f"VM {vm_name} has no {kind} console (see its spec: graphics.vnc, serial)")
    return {key: console[key] for key in PUBLIC_KEYS if key in console}


def open_console(console: dict[str, Any]) -> int:
    """Connect to (or open) the console ``console`` describes; returns the descriptor, which
    the caller owns.

    A serial device (the nmdm(4) B side) is opened ``O_RDWR | O_NOCTTY | O_NONBLOCK`` and put in
    raw mode, as the bridge's own tty code does (FreeBSD reference 9.1). A TCP console must be
    a numeric loopback address.

    :raises OSError: it refused, timed out, or does not exist. :raises ValueError: malformed.
    """
    if console.get("unix"):
        path = str(console["unix"])
        if not os.path.isabs(path):
            raise ValueError(f"console socket {path!r} is not an absolute path")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(CONNECT_TIMEOUT)
            sock.connect(path)
        except BaseException:
            sock.close()
            raise
        return sock.detach()
    if console.get("device"):
        path = str(console["device"])
        if not path.startswith("/dev/"):
            raise ValueError(f"console device {path!r} is not under /dev")
        fd = os.open(path, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        try:
            tty.setraw(fd, termios.TCSANOW)  # cfmakeraw: no echo, no line editing, 8 bits
        except termios.error:
            os.close(fd)
            raise
        return fd
    host, port = console.get("host"), console.get("port")
    try:
        loopback = ipaddress.ip_address(str(host)).is_loopback
    except ValueError:
        loopback = False
    if not loopback or not isinstance(port, int) or not 0 < port < 65536:
        raise ValueError(f"console endpoint {host}:{port} is not a loopback address and port")
    connection = socket.create_connection((str(host), port), timeout=CONNECT_TIMEOUT)
    return connection.detach()


def open_vm_console(runtime: Any, vm_name: str, kind: str) -> int:
    """Open VM ``vm_name``'s ``kind`` console (``serial`` or ``vnc``) here, in the worker (root),
    and return the descriptor, which the caller owns and closes. For task code that reads a
    guest's console itself (a restore drill waiting for a boot message); web front ends go
    through the console broker instead.

    :raises ValidationErrors: a bad name or kind. :raises NotFound: no such VM or console.
    :raises Conflict: the VM is not running. :raises OSError: the console refused.
    """
    from bhype_core.vm.services import active_driver

    name, kind = check_request(vm_name, kind)
    return open_console(locate_console(runtime, active_driver(runtime), name, kind))
