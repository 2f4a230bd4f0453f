"""The ``/api/v1/webui`` router: status, plus the console, notification and live VM state routes."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi import APIRouter
from pydantic import BaseModel, Field

from bhype_core.plugin_api import RuntimeDep
from bhype_webui.console_api import make_console_router
from bhype_webui.notify_api import make_notifications_router
from bhype_webui.settings import WebuiSettings
from bhype_webui.vm_stream import make_vm_stream_router

VENDOR_MANIFEST = Path("vendor") / "manifest.json"


class WebuiStatus(BaseModel):
    """``GET /api/v1/webui/status``."""

    title: str
    session_timeout_minutes: int
    assets_dir: str
    assets_dir_exists: bool
    index_present: bool
    vendor: dict[str, str] = Field(
        default_factory=dict,
        description="npm packages built into the assets (name: version); empty = not built",
    )


def vendor_packages(assets: Path) -> dict[str, str]:
    """The npm packages ``./dev setup`` copied into ``assets`` (from their manifest)."""
    try:
        manifest = json.loads((assets / VENDOR_MANIFEST).read_text())
    except (OSError, ValueError):
        return {}
    return {name: str(info.get("version", "")) for name, info in manifest.items() if isinstance(info, dict)}


def webui_status(settings: WebuiSettings) -> WebuiStatus:
    """The status document for ``settings``: whether there are pages to serve."""
    assets = settings.effective_assets_dir
    return WebuiStatus(
        title=settings.title,
        session_timeout_minutes=settings.session_timeout_minutes,
        assets_dir=str(assets),
        assets_dir_exists=assets.is_dir(),
        index_present=(assets / "index.html").is_file(),
        vendor=vendor_packages(assets),
    )


def make_router() -> APIRouter:
    """Build the plugin's router (a fresh one per app: no import-time globals)."""
    router = APIRouter(tags=["webui"])

    @router.get("/status", response_model=WebuiStatus)
    def status(runtime: RuntimeDep) -> WebuiStatus:
        """The web UI's settings and whether its page assets are in place."""
        return webui_status(runtime.settings.section("webui"))

    router.include_router(make_console_router())
    router.include_router(make_notifications_router())
    router.include_router(make_vm_stream_router())
    return router
