"""The web UI page ``/ui/snmp`` (admins): managers without secrets (add, test, remove through the
API with the web UI's declarative forms and buttons), the engine IDs, the agent and its SNMPv3
users (add, remove; keys never shown)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bhype_core.plugin_api import Assets, Page, UiRequest, local_host_name
from bhype_snmp import agent_users, engines
from bhype_snmp import managers as store

TEMPLATES = Path(__file__).resolve().parent / "templates"
ASSETS = "snmp_ui"


def page_context(ui: UiRequest) -> dict[str, Any]:
    """What ``snmp_ui/managers.html`` shows (read from the database; no secret in it)."""
    settings = ui.runtime.settings.section("snmp")
    return {"managers": [store.ManagerPublic.of(row).model_dump() for row in store.list_managers(ui.runtime)],
            "host": local_host_name(ui.runtime), "engine_id": engines.engine_id(ui.runtime).hex(),
            "sender_engine_ids": engines.sender_engine_ids(ui.runtime), "agent_enabled": settings.agent_enabled,
            "agent_address": settings.agent_address,
            "agent_v2c": bool(settings.agent_community.get_secret_value()),
            "agent_engine_id": engines.engine_id(ui.runtime, "agent").hex(),
            "agent_users": [agent_users.AgentUserPublic.of(row).model_dump()
                            for row in agent_users.list_users(ui.runtime)]}


def page() -> Page:
    """The page record (admins only; in the navigation as "SNMP")."""
    return Page("snmp", "snmp", "SNMP", f"{ASSETS}/managers.html", page_context, nav_label="SNMP", nav_order=80,
                admin_only=True)


def assets() -> Assets:
    """Where the page's template lives."""
    return Assets(ASSETS, template_dir=TEMPLATES)
