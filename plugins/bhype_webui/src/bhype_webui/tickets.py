"""Console tickets: short-lived, single-use permissions to open one console WebSocket.

A browser cannot put a session cookie's CSRF token or a bearer token on a WebSocket opened by
noVNC, so an authenticated API call issues a ticket (who, which VM, which console) and the
WebSocket presents it once. Tickets live in the API process's memory: ``bhype serve`` is one
process, and a restart rightly voids them.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from bhype_core.plugin_api import Unauthorized

ConsoleKind = Literal["vnc", "serial"]
KINDS: tuple[ConsoleKind, ...] = ("vnc", "serial")


class TicketRefused(Unauthorized):
    """The ticket is unknown, already used, expired, or for another kind of console."""

    code = "console_ticket_refused"


@dataclass(frozen=True)
class ConsoleGrant:
    """Who may open which console, and the credential whose life bounds the connection."""

    user: str
    role: str
    vm: str
    kind: ConsoleKind
    method: Literal["session", "token"]
    session_key: str | None = None
    token_id: int | None = None

    @property
    def admin(self) -> bool:
        return self.role == "admin"


@dataclass(frozen=True)
class Ticket:
    """An issued ticket: the secret the browser presents, the grant, and the viewer id the
    connection will have (so the page can ask for control before it connects)."""

    secret: str
    grant: ConsoleGrant
    viewer_id: str
    expires_at: float


class TicketStore:
    """Issued tickets until used or expired. Thread-safe: routes issue from the thread pool,
    WebSocket handlers redeem on the event loop."""

    def __init__(self, ttl: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self.clock = clock
        self._tickets: dict[str, Ticket] = {}
        self._lock = threading.Lock()

    def issue(self, grant: ConsoleGrant, viewer_id: str) -> Ticket:
        """A new ticket for ``grant`` (256 random bits, URL-safe)."""
        now = self.clock()
        ticket = Ticket(secrets.token_urlsafe(32), grant, viewer_id, now + self.ttl)
        with self._lock:
            self._purge(now)
            self._tickets[ticket.secret] = ticket
        return ticket

    def redeem(self, secret: str, kind: str) -> Ticket:
        """Use the ticket ``secret`` for a ``kind`` console; it can never be used again.

        :raises TicketRefused: unknown or already used, expired, or issued for another kind.
        """
        with self._lock:
            ticket = self._tickets.pop(secret, None) if secret else None
        if ticket is None:
            raise TicketRefused("console ticket unknown or already used; ask for a new one")
        if self.clock() >= ticket.expires_at:
            raise TicketRefused("console ticket expired; ask for a new one")
        if ticket.grant.kind != kind:
            raise TicketRefused(f"this ticket is for the {ticket.grant.kind} console, not {kind}")
        return ticket

    def __len__(self) -> int:
        with self._lock:
            return len(self._tickets)

    def _purge(self, now: float) -> None:
        for secret in [s for s, t in self._tickets.items() if t.expires_at <= now]:
            del self._tickets[secret]
