"""The ``/api/v1/webui`` router."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from bhype_core.api.deps import RuntimeDep
from bhype_webui.settings import WebuiSettings


class WebuiStatus(BaseModel):
    """``GET /api/v1/webui/status``."""

    title: str
    session_timeout_minutes: int
    assets_dir: str
    assets_dir_exists: bool
    index_present: bool


def webui_status(settings: WebuiSettings) -> WebuiStatus:
    """The status document for ``settings``: whether there are pages to serve."""
    assets = settings.effective_assets_dir
    return WebuiStatus(
        title=settings.title,
        session_timeout_minutes=settings.session_timeout_minutes,
        assets_dir=str(assets),
        assets_dir_exists=assets.is_dir(),
        index_present=(assets / "index.html").is_file(),
    )


def make_router() -> APIRouter:
    """Build the plugin's router (a fresh one per app: no import-time globals)."""
    router = APIRouter(tags=["webui"])

    @router.get("/status", response_model=WebuiStatus)
    def status(runtime: RuntimeDep) -> WebuiStatus:
        """The web UI's settings and whether its page assets are in place."""
        return webui_status(runtime.settings.section("webui"))

    return router
