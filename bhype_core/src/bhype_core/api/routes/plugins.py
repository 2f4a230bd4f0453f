"""``GET /api/v1/plugins``: every plugin, active or blocked, with its version and hooks."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from bhype_core.api.deps import PluginManagerDep


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


def make_router() -> APIRouter:
    """Build the plugins router (a fresh one per app)."""
    router = APIRouter(tags=["plugins"])

    @router.get("/api/v1/plugins", response_model=PluginList)
    def list_plugins(pm: PluginManagerDep) -> PluginList:
        """Every plugin: name, distribution, version, status (active/blocked and why), hooks."""
        return PluginList(plugins=[PluginPublic(**info.to_dict()) for info in pm.infos()])

    return router
