"""Who may open a VM's console, whether they still may, and where the console is.

Access follows the VM visibility rule of the core (owner or admin, ``bhype_core.vm.records``)
and the life of the credential behind the ticket: a logged-out or expired session, a revoked
or expired token, a VM given to someone else, all end an open console at the next re-check.
Every function here blocks (database, driver state files): call it from a thread.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

from bhype_core.plugin_api import (
    Conflict,
    NotFound,
    Principal,
    Unauthorized,
    api_token_role,
    find_vm,
    get_vm,
    may_see,
    open_datastore,
)
from bhype_core.plugin_api import status_driver as core_status_driver
from bhype_webui.tickets import ConsoleGrant, ConsoleKind
from bhype_webui.upstream import BrokerRoute, Endpoint, EndpointError


def make_grant(runtime: Any, authenticated: Any, vm: str, kind: ConsoleKind) -> ConsoleGrant:
    """The grant for the caller of an API request (``Authenticated`` from the core's guard).

    :raises NotFound: no such VM, or not the caller's (same answer, as in ``/api/v1/vms``).
    :raises Conflict: the VM is not running. :raises NotFound: it has no such console.
    """
    principal = authenticated.principal
    get_vm(runtime, vm, principal)
    locate(runtime, vm, kind)  # refuse now rather than after the page connected
    session = getattr(authenticated, "session", None)
    return ConsoleGrant(
        user=principal.name,
        role=principal.role,
        vm=vm,
        kind=kind,
        method=authenticated.method,
        session_key=session.key if session is not None else None,
        token_id=getattr(authenticated, "token_id", None),
    )


def check_access(runtime: Any, auth: Any, grant: ConsoleGrant) -> str | None:
    """``None`` while ``grant`` still holds, else why it no longer does.

    :param auth: the app's ``AuthService`` (sessions, settings, clock).
    """
    role = grant.role
    if grant.method == "session":
        record = auth.sessions.get(grant.session_key) if grant.session_key else None
        if record is None:
            return "the session has ended"
        if auth.clock() - record.created_at >= auth.settings.session_absolute_timeout:
            return "the session has expired"
        role = record.role
    else:
        try:
            role = api_token_role(runtime, grant.token_id)
        except Unauthorized as exc:
            return exc.message
    vm = find_vm(runtime, grant.vm)
    if vm is None:
        return "the VM no longer exists"
    if not may_see(Principal(grant.user, role), vm):  # type: ignore[arg-type]
        return "you no longer have access to this VM"
    return None


def status_driver(runtime: Any) -> Any:
    """A driver of this host's kind, for reading VM status only.

    Its own instance, not the worker's (``vm.services.active_driver``): the API process's
    runtime refuses host commands, and a driver built with that runner must never be the one
    an in-process worker picks up from the shared ``runtime.extras``.
    """
    return core_status_driver(runtime)


def locate(runtime: Any, vm_name: str, kind: ConsoleKind) -> tuple[Endpoint, str | None]:
    """Where VM ``vm_name``'s ``kind`` console listens now, and the VNC password if any.

    :raises NotFound: no such VM, or no such console. :raises Conflict: the VM is not running.
    """
    row = find_vm(runtime, vm_name)
    if row is None:
        raise NotFound(f"no VM named {vm_name!r}")
    spec = row.spec_model()
    from bhype_core.plugin_api import ConsoleBrokerClient, broker_path

    broker = broker_path(runtime)
    if broker is not None:
        # Not root, a root worker runs: the VM's state and sockets are root's alone; the
        # worker's console broker locates (and later opens) the console (docs/vms.md).
        console = ConsoleBrokerClient(broker).locate(vm_name, kind)
    else:
        vm_dir = open_datastore(runtime, row.datastore).vm_dir(row.name)
        status = status_driver(runtime).status(spec, vm_dir)
        if not status.active:
            raise Conflict(f"VM {vm_name} is {status.state.value}; start it to use its console")
        console = status.consoles.get(kind)
        if not console:
            raise NotFound(f"VM {vm_name} has no {kind} console (see its spec: graphics.vnc, serial)")
    try:
        endpoint = Endpoint.from_console(console)
    except EndpointError as exc:
        raise Conflict(str(exc)) from None
    if broker is not None:
        endpoint = replace(endpoint, route=BrokerRoute(str(broker), vm_name, kind))
    # QEMU serves VNC on a private unix socket without a password ("password": False); bhyve's
    # fbuf listens on loopback TCP and needs the VM's password, read from the spec only then.
    wants_password = kind == "vnc" and console.get("password", True) is not False
    password = spec.graphics.password if wants_password else None
    return endpoint, password
