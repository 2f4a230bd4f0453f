"""The ``[monitor]`` settings section."""

from __future__ import annotations

from pydantic import Field

from bhype_core.plugin_api import Section


class MonitorSettings(Section):
    """``[monitor]``: how often metrics are sampled and how long their history is kept."""

    history_retention_days: int = Field(30, ge=1, le=3650, description="days of metric history kept")
    sample_interval_seconds: int = Field(60, ge=10, le=3600, description="seconds between samples")
    command_timeout: float = Field(5.0, gt=0, le=60, description="seconds allowed per host query")
