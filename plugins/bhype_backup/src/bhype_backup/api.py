"""The ``/api/v1/backup`` router."""

from __future__ import annotations

from fastapi import APIRouter

from bhype_backup.status import PROBE_KIND, BackupStatus, backup_status
from bhype_core.plugin_api import AdminDep, PrincipalDep, RuntimeDep, TaskAccepted, accept_task


def make_router() -> APIRouter:
    """Build the plugin's router (a fresh one per app: no import-time globals)."""
    router = APIRouter(tags=["backup"])

    @router.get("/status", response_model=BackupStatus)
    def status(runtime: RuntimeDep, principal: PrincipalDep) -> BackupStatus:
        """rsync on the host as the worker last probed it (``probed_at``, ``age_seconds``), and
        the configured backup targets; the API process runs no host command."""
        return backup_status(runtime)

    @router.post("/status/refresh", status_code=202, response_model=TaskAccepted)
    def refresh_status(runtime: RuntimeDep, principal: AdminDep) -> TaskAccepted:
        """Queue ``backup.probe``: the worker probes the host's rsync now and stores the result."""
        return accept_task(runtime, principal, PROBE_KIND, {})

    from bhype_backup.api_backups import make_backup_router

    router.include_router(make_backup_router())
    return router
