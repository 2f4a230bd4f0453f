"""The ``/api/v1/monitor`` router."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from bhype_core.api.deps import RuntimeDep
from bhype_core.errors import CommandError
from bhype_monitor.hostinfo import HostSample, read_host
from bhype_monitor.settings import MonitorSettings


class MonitorStatus(BaseModel):
    """``GET /api/v1/monitor/status``."""

    host: HostSample | None
    error: str | None = None
    history_retention_days: int
    sample_interval_seconds: int


def make_router() -> APIRouter:
    """Build the plugin's router (a fresh one per app: no import-time globals)."""
    router = APIRouter(tags=["monitor"])

    # A plain ``def``: FastAPI runs it in a worker thread, so the host commands do not block the loop.
    @router.get("/status", response_model=MonitorStatus)
    def status(runtime: RuntimeDep) -> MonitorStatus:
        """The host's current load average and memory, and the configured history retention."""
        settings: MonitorSettings = runtime.settings.section("monitor")
        host, error = None, None
        try:
            host = read_host(runtime.runner, settings.command_timeout)
        except (CommandError, ValueError) as exc:  # report an unreadable host, keep answering
            error = str(exc)
        return MonitorStatus(
            host=host,
            error=error,
            history_retention_days=settings.history_retention_days,
            sample_interval_seconds=settings.sample_interval_seconds,
        )

    return router
