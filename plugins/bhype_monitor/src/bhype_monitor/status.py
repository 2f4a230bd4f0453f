"""The monitor's status: the host's load and memory as the worker last read them.

The API process runs no host commands (issue 3): the worker's ``monitor.probe`` (periodic job
and task kind) reads the host through the real runner (:func:`bhype_monitor.hostinfo.read_host`)
and stores the fact ``monitor.status``; the status route reads it.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from bhype_core.plugin_api import CommandError, ProbeState, read_probe
from bhype_monitor.hostinfo import HostSample, read_host
from bhype_monitor.settings import MonitorSettings

FACT_KEY = "monitor.status"
PROBE_KIND = "monitor.probe"
REFRESH_ROUTE = "POST /api/v1/monitor/status/refresh"


class MonitorProbe(BaseModel):
    """What the worker read (the fact ``monitor.status``): a sample, or why there is none."""

    host: HostSample | None
    error: str | None = None


class MonitorStatus(ProbeState):
    """``GET /api/v1/monitor/status``: the last reading (``host`` and ``error`` empty and a
    ``message`` while ``probed`` is false) and the configured history settings."""

    host: HostSample | None = None
    error: str | None = None
    history_retention_days: int
    sample_interval_seconds: int


def probe(context: Any) -> dict[str, Any]:
    """Task kind and periodic job ``monitor.probe`` (worker only): read the host's load and
    memory with the worker's runner and store it as the fact ``monitor.status``; an unreadable
    host is stored as the error, not raised. Returns what was stored."""
    settings: MonitorSettings = context.settings.section("monitor")
    try:
        found = MonitorProbe(host=read_host(context.runner, settings.command_timeout))
    except (CommandError, ValueError) as exc:  # report an unreadable host, keep the job alive
        found = MonitorProbe(host=None, error=str(exc))
    value = found.model_dump(mode="json")
    context.runtime.facts.put(FACT_KEY, value)
    context.log(f"probed: {found.host.platform} host" if found.host else f"probed: host unreadable: {found.error}")
    return value


def monitor_status(runtime: Any) -> MonitorStatus:
    """Everything ``GET /api/v1/monitor/status`` reports, from the stored probe and the settings
    (no host command)."""
    settings: MonitorSettings = runtime.settings.section("monitor")
    found, state = read_probe(runtime.facts, FACT_KEY, MonitorProbe, what="the host's load and memory",
                              refresh=REFRESH_ROUTE)
    return MonitorStatus(
        **state.model_dump(),
        host=found.host if found else None,
        error=found.error if found else None,
        history_retention_days=settings.history_retention_days,
        sample_interval_seconds=settings.sample_interval_seconds,
    )
