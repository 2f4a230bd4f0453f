"""``GET /api/v1/plugins``: every plugin, active or blocked, with its version and hooks;
``GET /api/v1/event-kinds``: the event-kind catalog (what ``bhype_notify`` may deliver)."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from bhype_core.api.deps import PluginManagerDep, RegistryDep


class PluginPublic(BaseModel):
    """One plugin as ``bhype plugins`` shows it."""

    name: str
    distribution: str | None
    version: str | None
    status: str
    reason: str
    hooks: list[str]


class PluginList(BaseModel):
    """All plugins, sorted by name."""

    plugins: list[PluginPublic]


class EventKindPublic(BaseModel):
    """One kind of event: its usual severity, its ``data`` fields and what it means."""

    name: str
    severity: str
    description: str
    fields: dict[str, str]
    plugin: str


class EventKindList(BaseModel):
    """Every event kind, the core's first, then each plugin's in registration order."""

    event_kinds: list[EventKindPublic]


def make_router() -> APIRouter:
    """Build the plugins router (a fresh one per app)."""
    router = APIRouter(tags=["plugins"])

    @router.get("/api/v1/plugins", response_model=PluginList)
    def list_plugins(pm: PluginManagerDep) -> PluginList:
        """Every plugin: name, distribution, version, status (active/blocked and why), hooks."""
        return PluginList(plugins=[PluginPublic(**info.to_dict()) for info in pm.infos()])

    @router.get("/api/v1/event-kinds", response_model=EventKindList)
    def list_event_kinds(registry: RegistryDep) -> EventKindList:
        """Every event kind (name, severity, data fields, description) and the plugin declaring it."""
        catalog = registry.event_kinds
        return EventKindList(event_kinds=[
            EventKindPublic(**kind.to_dict(), plugin=catalog.plugin_of(kind.name)) for kind in catalog
        ])

    return router
