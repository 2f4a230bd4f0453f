"""The ``webui`` plugin's hook implementations."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from bhype_core.plugin_api import Event, ModelSet, RouterEntry, SettingsSection, hookimpl
from bhype_webui.api import make_router
from bhype_webui.pages import make_pages_router
from bhype_webui.settings import WebuiSettings

if TYPE_CHECKING:
    import pluggy

    from bhype_webui.extensions import DashboardPanel, NavEntry

log = logging.getLogger("bhype.webui")


@hookimpl
def bhype_add_hookspecs(pm: pluggy.PluginManager) -> None:
    """Declare the web UI's own hooks (pages, VM tabs, dashboard panels, navigation, assets)."""
    from bhype_webui import hookspecs

    pm.add_hookspecs(hookspecs)


@hookimpl
def bhype_webui_register_nav_entries(register: Callable[[NavEntry], None]) -> None:
    """The web UI's own navigation (Dashboard … API tokens, orders 10-80)."""
    from bhype_webui.builtin_ui import NAV

    for entry in NAV:
        register(entry)


@hookimpl
def bhype_webui_register_dashboard_panels(register: Callable[[DashboardPanel], None]) -> None:
    """The host cards: CPU, memory, storage (orders 10-30)."""
    from bhype_webui.builtin_ui import PANELS

    for panel in PANELS:
        register(panel)


@hookimpl
def bhype_register_settings(register: Callable[[SettingsSection], None]) -> None:
    """Declare the ``[webui]`` section."""
    register(SettingsSection(name="webui", model=WebuiSettings))


@hookimpl
def bhype_register_routers(register: Callable[[RouterEntry], None]) -> None:
    """Mount ``/api/v1/webui`` (status, console tickets and WebSockets, notifications, live VM
    states), ``/ui`` (console pages and assets; the other pages) and ``/`` (to the dashboard)."""
    from bhype_webui.views import PageKit, make_root_router, make_views_router

    register(RouterEntry(name="webui", router=make_router()))
    register(RouterEntry(name="webui_pages", router=make_pages_router(), prefix="/ui"))
    kit = PageKit()
    register(RouterEntry(name="webui_views", router=make_views_router(kit), prefix="/ui"))
    register(RouterEntry(name="webui_root", router=make_root_router(kit), prefix="/"))


@hookimpl
def bhype_register_models(register: Callable[[ModelSet], None]) -> None:
    """Tables ``webui_notification`` and ``webui_notification_seen`` (branch ``webui``)."""
    from bhype_webui.notify_models import MIGRATIONS, WEBUI_MODELS

    register(ModelSet(name="webui", models=WEBUI_MODELS, migrations=MIGRATIONS))


@hookimpl
def bhype_notify(event: Event, runtime: Any) -> None:
    """Keep the event for its user (``None``: every admin); open pages show it as a popup."""
    if runtime is None:
        # Delivered without a runtime (a bare notify call): there is no database to write to.
        log.warning("event %s not kept for the web UI: no runtime given", event.kind)
        return
    from bhype_webui.notify_store import store_event

    keep = runtime.settings.section("webui").notification_keep_days
    store_event(runtime.engine, event, keep_days=keep)
