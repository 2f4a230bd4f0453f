"""Console routes under ``/api/v1/webui``: tickets, viewers, take-control, and the WebSockets.

``POST /consoles/{vm}/{kind}/ticket`` (session + CSRF, or a bearer token) returns a ticket;
``/console/{kind}?ticket=…`` is the WebSocket that presents it. That route is public to the
core's guard: the ticket *is* its credential (a browser cannot send the CSRF header there).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, WebSocket
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from bhype_core.plugin_api import PUBLIC, AuthenticatedDep, BhypeError, PrincipalDep, RuntimeDep, get_vm
from bhype_webui import rfb
from bhype_webui.access import check_access, locate, make_grant
from bhype_webui.channel import CLOSE_INTERNAL, CLOSE_POLICY, WebSocketChannel
from bhype_webui.console_session import serve_serial, serve_vnc
from bhype_webui.hub import console_hub
from bhype_webui.tickets import ConsoleKind, TicketRefused
from bhype_webui.upstream import EndpointError
from bhype_webui.viewers import Viewer, new_viewer_id
from bhype_webui.vnc_mux import VncMux

log = logging.getLogger("bhype.webui.console")


class TicketIssued(BaseModel):
    """A single-use ticket: open ``websocket`` (relative URL, ticket included) within
    ``expires_in`` seconds."""

    ticket: str
    expires_in: float
    viewer_id: str = Field(description="this connection's id among the console's viewers")
    websocket: str


class ViewerInfo(BaseModel):
    """One connected viewer."""

    id: str
    user: str
    admin: bool
    in_control: bool
    joined: float


class ViewerList(BaseModel):
    """Who is watching a console and who is in control (VNC) right now."""

    vm: str
    kind: ConsoleKind
    viewers: list[ViewerInfo]


class TakeControl(BaseModel):
    """``POST …/control``: make this viewer of yours the one whose input reaches the VM."""

    viewer_id: str


def _viewers(runtime: Any, vm: str, kind: ConsoleKind) -> ViewerList:
    mux = console_hub(runtime).find(kind, vm)
    listed = mux.viewers.describe() if mux is not None else []
    return ViewerList(vm=vm, kind=kind, viewers=[ViewerInfo(**v) for v in listed])


def make_console_router() -> APIRouter:
    """The console routes (a fresh router per app)."""
    router = APIRouter()

    @router.post("/consoles/{vm}/{kind}/ticket", response_model=TicketIssued)
    def issue_ticket(
        vm: str, kind: ConsoleKind, runtime: RuntimeDep, authenticated: AuthenticatedDep
    ) -> TicketIssued:
        """A single-use ticket for VM ``vm``'s ``kind`` console (owner or admin; VM running)."""
        grant = make_grant(runtime, authenticated, vm, kind)
        hub = console_hub(runtime)
        ticket = hub.tickets.issue(grant, new_viewer_id())
        return TicketIssued(
            ticket=ticket.secret,
            expires_in=hub.tickets.ttl,
            viewer_id=ticket.viewer_id,
            websocket=f"/api/v1/webui/console/{kind}?ticket={ticket.secret}",
        )

    @router.get("/consoles/{vm}/{kind}/viewers", response_model=ViewerList)
    def list_viewers(vm: str, kind: ConsoleKind, runtime: RuntimeDep, principal: PrincipalDep) -> ViewerList:
        """Who is watching VM ``vm``'s ``kind`` console, and who is in control."""
        get_vm(runtime, vm, principal)
        return _viewers(runtime, vm, kind)

    @router.post("/consoles/{vm}/vnc/control", response_model=ViewerList)
    async def take_control(
        vm: str, body: TakeControl, runtime: RuntimeDep, principal: PrincipalDep
    ) -> ViewerList:
        """Make your viewer ``viewer_id`` the one in control (an admin may take over from an
        operator; nobody but an admin from an admin)."""

        def visible() -> None:
            get_vm(runtime, vm, principal)

        await run_in_threadpool(visible)
        mux = console_hub(runtime).find("vnc", vm)
        if mux is None:
            from bhype_core.plugin_api import NotFound

            raise NotFound(f"nobody is viewing VM {vm}'s console")
        # On the event loop, like every other change to the viewers.
        mux.viewers.take_control(body.viewer_id, principal.name, principal.is_admin)
        return _viewers(runtime, vm, "vnc")

    @router.websocket("/console/{kind}", dependencies=[PUBLIC])
    async def console_socket(websocket: WebSocket, kind: str) -> None:
        """The console WebSocket (binary RFB for ``vnc``, raw bytes for ``serial``); the
        ``ticket`` query parameter authorises it once."""
        await open_console(websocket, kind)

    return router


async def open_console(websocket: WebSocket, kind: str) -> None:
    """Accept, redeem the ticket, re-check access, attach to the VM's console, and serve."""
    channel = await WebSocketChannel.accept(websocket)
    runtime = websocket.app.state.runtime
    auth = websocket.app.state.auth
    hub = console_hub(runtime)
    try:
        ticket = hub.tickets.redeem(websocket.query_params.get("ticket", ""), kind)
    except TicketRefused as exc:
        await channel.close(CLOSE_POLICY, exc.message)
        return
    grant = ticket.grant
    interval = runtime.settings.section("webui").console_recheck_seconds

    async def recheck() -> str | None:
        return await run_in_threadpool(check_access, runtime, auth, grant)

    try:
        reason = await recheck()
        if reason is not None:
            raise TicketRefused(f"access refused: {reason}")
        endpoint, password = await run_in_threadpool(locate, runtime, grant.vm, grant.kind)
        mux = await hub.attach(grant.kind, grant.vm, endpoint, password)
    except BhypeError as exc:
        await channel.close(CLOSE_POLICY, exc.message)
        return
    except (EndpointError, rfb.ProtocolError, asyncio.IncompleteReadError, OSError) as exc:
        log.warning("console %s/%s: %s", grant.vm, grant.kind, exc)
        await channel.close(CLOSE_INTERNAL, f"cannot reach the VM's console: {exc}")
        return
    viewer = Viewer(ticket.viewer_id, grant.user, grant.admin)
    try:
        if isinstance(mux, VncMux):
            await serve_vnc(channel, mux, viewer, recheck, interval)
        else:
            await serve_serial(channel, mux, viewer, recheck, interval)
    except (rfb.ProtocolError, asyncio.IncompleteReadError) as exc:
        await channel.close(CLOSE_POLICY, f"not an RFB client: {exc}")
    finally:
        hub.detach(grant.kind, grant.vm, mux, viewer)
