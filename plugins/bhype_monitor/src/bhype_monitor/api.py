"""The ``/api/v1/monitor`` router."""

from __future__ import annotations

from fastapi import APIRouter

from bhype_core.plugin_api import AdminDep, PrincipalDep, RuntimeDep, TaskAccepted, accept_task
from bhype_monitor.status import PROBE_KIND, MonitorStatus, monitor_status


def make_router() -> APIRouter:
    """Build the plugin's router (a fresh one per app: no import-time globals)."""
    router = APIRouter(tags=["monitor"])

    @router.get("/status", response_model=MonitorStatus)
    def status(runtime: RuntimeDep, principal: PrincipalDep) -> MonitorStatus:
        """The host's load average and memory as the worker last read them (``probed_at``,
        ``age_seconds``), and the configured history retention; the API process runs no host
        command."""
        return monitor_status(runtime)

    @router.post("/status/refresh", status_code=202, response_model=TaskAccepted)
    def refresh_status(runtime: RuntimeDep, principal: AdminDep) -> TaskAccepted:
        """Queue ``monitor.probe``: the worker reads the host's load and memory now."""
        return accept_task(runtime, principal, PROBE_KIND, {})

    return router
