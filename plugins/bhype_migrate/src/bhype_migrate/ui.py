"""The web UI pieces, through the web UI plugin's hooks only: a "Peers" page (list, add,
test, remove) and a "Move" tab on each VM page (the move dialog: peer, mode, keep source, start,
dry run). Both for admins; the forms post to ``/api/v1/migrate`` like any API client."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from sqlmodel import col, select

from bhype_core.plugin_api import Assets, Page, UiRequest, VMTab, group_hosts, session
from bhype_migrate import journal
from bhype_migrate.models import MigratePeer

TEMPLATES = Path(__file__).resolve().parent / "ui_templates"


def _peers(ui: UiRequest) -> list[dict[str, Any]]:
    with session(ui.runtime) as db:
        return [row.public() for row in db.exec(select(MigratePeer).order_by(col(MigratePeer.name))).all()]


def peers_context(ui: UiRequest) -> Mapping[str, Any]:
    """The Peers page: every peer and the latest moves."""
    return {"peers": _peers(ui), "moves": journal.moves(ui.runtime, limit=20)}


def move_context(ui: UiRequest) -> Mapping[str, Any]:
    """The Move tab: the group's other hosts and the peers to choose from, and this VM's moves."""
    moves = [m for m in journal.moves(ui.runtime) if m["vm_uuid"] == str(ui.vm.uuid)]
    others = [{"name": s.host.name, "state": s.state} for s in group_hosts(ui.runtime)
              if s.host.name != getattr(ui.vm, "host", "")]
    return {"peers": _peers(ui), "group_hosts": others, "moves": moves[:5]}


def register_pages(register: Callable[[Page], None]) -> None:
    register(Page("migrate-peers", "peers", "Peers", "migrate/peers.html", peers_context,
                  nav_label="Peers", nav_order=80, admin_only=True))


def register_vm_tabs(register: Callable[[VMTab], None]) -> None:
    register(VMTab("move", "Move", "migrate/vm_move.html", move_context, order=90, admin_only=True))


def register_assets(register: Callable[[Assets], None]) -> None:
    register(Assets("migrate", template_dir=TEMPLATES))


__all__ = ["register_assets", "register_pages", "register_vm_tabs"]
