"""The web UI's own navigation entries and dashboard panels, registered through its own hooks
(``bhype_webui_register_nav_entries``/``_dashboard_panels`` in :mod:`bhype_webui.plugin`) exactly
as another plugin registers its own: the pages hold no list of them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bhype_webui.extensions import DashboardPanel, NavEntry, UiRequest

NAV = (
    NavEntry("dashboard", "Dashboard", "/ui/", 10),
    NavEntry("vms", "VMs", "/ui/vms", 20),
    NavEntry("new", "Create VM", "/ui/vms/new", 25),
    NavEntry("tasks", "Tasks", "/ui/tasks", 30),
    NavEntry("isos", "ISOs", "/ui/isos", 40),
    NavEntry("templates", "Templates", "/ui/templates", 50),
    NavEntry("switches", "Switches", "/ui/switches", 60),
    NavEntry("tokens", "API tokens", "/ui/tokens", 80),
)


def host_context(ui: UiRequest) -> Mapping[str, Any]:
    """``host``: the host summary for the caller, computed once per request for all three cards."""
    from bhype_webui.host_summary import host_summary

    state = ui.request.state
    if getattr(state, "webui_host", None) is None:
        state.webui_host = host_summary(ui.runtime, ui.principal)
    return {"host": state.webui_host}


PANELS = (
    DashboardPanel("host-cpu", "CPU", "panels/cpu.html", host_context, order=10),
    DashboardPanel("host-memory", "Memory", "panels/memory.html", host_context, order=20),
    DashboardPanel("host-storage", "Storage", "panels/storage.html", host_context, order=30),
)
