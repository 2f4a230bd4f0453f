"""The ``/api/v1/zfs`` router."""

from __future__ import annotations

from fastapi import APIRouter

from bhype_core.api.deps import RuntimeDep
from bhype_zfs.settings import ZfsSettings
from bhype_zfs.status import ZfsStatus, zfs_status


def make_router() -> APIRouter:
    """Build the plugin's router (a fresh one per app: no import-time globals)."""
    router = APIRouter(tags=["zfs"])

    # A plain ``def``: FastAPI runs it in a worker thread, so the host commands do not block the loop.
    @router.get("/status", response_model=ZfsStatus)
    def status(runtime: RuntimeDep) -> ZfsStatus:
        """OpenZFS version on the host and the configured pool's size and health."""
        settings: ZfsSettings = runtime.settings.section("zfs")
        return zfs_status(runtime.runner, settings)

    return router
