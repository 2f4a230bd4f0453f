"""The API process's consoles: issued tickets and one multiplexer per (VM, console kind).

Kept in ``runtime.extras`` (one per process, nothing global). A multiplexer is opened when
its first viewer arrives and closed when its last one leaves, so bHype holds a VM's single
VNC/serial connection only while someone is watching.
"""

from __future__ import annotations

import asyncio
from typing import Any

from bhype_webui.serial_mux import SerialMux
from bhype_webui.tickets import ConsoleKind, TicketStore
from bhype_webui.upstream import Endpoint, open_endpoint
from bhype_webui.viewers import Viewer
from bhype_webui.vnc_mux import VncMux

HUB = "webui.console_hub"
Mux = VncMux | SerialMux


class ConsoleHub:
    """Tickets and live multiplexers of one API process."""

    def __init__(self, ticket_ttl: float, serial_history_bytes: int) -> None:
        self.tickets = TicketStore(ticket_ttl)
        self.serial_history_bytes = serial_history_bytes
        self.muxes: dict[tuple[ConsoleKind, str], tuple[Endpoint, Mux]] = {}
        self._locks: dict[tuple[ConsoleKind, str], asyncio.Lock] = {}

    def find(self, kind: ConsoleKind, vm: str) -> Mux | None:
        """The live multiplexer of ``vm``'s ``kind`` console, if anyone is watching."""
        entry = self.muxes.get((kind, vm))
        return entry[1] if entry is not None and not entry[1].closed else None

    async def attach(self, kind: ConsoleKind, vm: str, endpoint: Endpoint, password: str | None) -> Mux:
        """The multiplexer for ``vm``'s ``kind`` console at ``endpoint``, opened if needed.

        :raises EndpointError: the console cannot be reached.
        :raises rfb.ProtocolError: the VNC server refused the password or spoke no RFB.
        """
        key = (kind, vm)
        async with self._locks.setdefault(key, asyncio.Lock()):
            entry = self.muxes.get(key)
            if entry is not None and not entry[1].closed and entry[0] == endpoint:
                return entry[1]
            if entry is not None:
                # The VM was restarted (a new port or socket) or the old connection ended.
                entry[1].close("the VM's console moved; reconnect")
            stream = await open_endpoint(endpoint)
            mux: Mux
            try:
                if kind == "vnc":
                    mux = VncMux(f"{vm}/vnc", stream, reopen=lambda: open_endpoint(endpoint))
                    await mux.start(password)
                else:
                    mux = SerialMux(f"{vm}/serial", stream, self.serial_history_bytes)
                    await mux.start()
            except BaseException:
                stream.close()
                raise
            self.muxes[key] = (endpoint, mux)
            return mux

    def detach(self, kind: ConsoleKind, vm: str, mux: Mux, viewer: Viewer) -> None:
        """``viewer`` left; close the multiplexer when nobody is left watching."""
        mux.leave(viewer)
        if len(mux.viewers) == 0:
            mux.close("no viewers left")
            entry = self.muxes.get((kind, vm))
            if entry is not None and entry[1] is mux:
                del self.muxes[(kind, vm)]

    def close_all(self) -> None:
        """End every console (shutdown)."""
        for _, mux in list(self.muxes.values()):
            mux.close("bHype is shutting down")
        self.muxes.clear()


def console_hub(runtime: Any) -> ConsoleHub:
    """This process's hub, built on first use from the ``[webui]`` settings."""
    hub = runtime.extras.get(HUB)
    if hub is None:
        settings = runtime.settings.section("webui")
        hub = runtime.extras.setdefault(
            HUB, ConsoleHub(settings.console_ticket_seconds, settings.serial_history_kib * 1024)
        )
    return hub
