"""Console tickets (single use, short-lived, per kind) and the take-control rules."""

from __future__ import annotations

import pytest

from bhype_core.errors import Conflict, NotFound
from bhype_webui.tickets import ConsoleGrant, TicketRefused, TicketStore
from bhype_webui.viewers import Viewer, ViewerSet


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def grant(kind="vnc"):
    return ConsoleGrant(user="alice", role="operator", vm="web1", kind=kind, method="token", token_id=1)


def test_a_ticket_works_once():
    store = TicketStore(30, Clock())
    ticket = store.issue(grant(), "viewer-1")
    assert store.redeem(ticket.secret, "vnc").grant == grant()
    with pytest.raises(TicketRefused, match="already used"):
        store.redeem(ticket.secret, "vnc")


def test_an_expired_ticket_is_refused_and_purged():
    clock = Clock()
    store = TicketStore(30, clock)
    ticket = store.issue(grant(), "v")
    clock.now += 30
    with pytest.raises(TicketRefused, match="expired"):
        store.redeem(ticket.secret, "vnc")
    store.issue(grant(), "v2")  # issuing purges the expired ones
    clock.now += 31
    store.issue(grant(), "v3")
    assert len(store) == 1


def test_a_ticket_opens_only_its_kind_and_unknown_ones_fail():
    store = TicketStore(30, Clock())
    ticket = store.issue(grant("serial"), "v")
    with pytest.raises(TicketRefused, match="serial console"):
        store.redeem(ticket.secret, "vnc")
    with pytest.raises(TicketRefused, match="unknown"):
        store.redeem("", "vnc")
    assert store.issue(grant(), "a").secret != store.issue(grant(), "b").secret


def test_first_viewer_controls_and_control_frees_up_when_it_leaves():
    viewers = ViewerSet()
    first, second = Viewer("1", "alice", False), Viewer("2", "alice", False)
    viewers.add(first)
    viewers.add(second)
    assert viewers.in_control(first) and not viewers.in_control(second)
    viewers.remove(first)
    assert viewers.controller is None
    viewers.take_control("2", "alice", False)
    assert viewers.in_control(second)


def test_admin_takes_over_from_operator_but_not_the_reverse():
    viewers = ViewerSet()
    operator, admin = Viewer("op", "alice", False), Viewer("ad", "root", True)
    viewers.add(operator)
    viewers.add(admin)
    viewers.take_control("ad", "root", True)
    assert viewers.controller == "ad"
    with pytest.raises(Conflict, match="only an admin"):
        viewers.take_control("op", "alice", False)
    with pytest.raises(NotFound):
        viewers.take_control("ad", "alice", False)  # not alice's viewer
    assert [v["in_control"] for v in viewers.describe()] == [False, True]
