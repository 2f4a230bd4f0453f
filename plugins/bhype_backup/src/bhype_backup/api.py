"""The ``/api/v1/backup`` router."""

from __future__ import annotations

from fastapi import APIRouter

from bhype_backup.settings import BackupSettings
from bhype_backup.status import BackupStatus, backup_status
from bhype_core.api.deps import RuntimeDep


def make_router() -> APIRouter:
    """Build the plugin's router (a fresh one per app: no import-time globals)."""
    router = APIRouter(tags=["backup"])

    # A plain ``def``: FastAPI runs it in a worker thread, so the host command does not block the loop.
    @router.get("/status", response_model=BackupStatus)
    def status(runtime: RuntimeDep) -> BackupStatus:
        """rsync availability on the host and the configured backup targets."""
        settings: BackupSettings = runtime.settings.section("backup")
        return backup_status(runtime.runner, settings)

    return router
