"""The ``[monitor]`` settings section."""

from __future__ import annotations

import ipaddress

from pydantic import Field, field_validator

from bhype_core.plugin_api import Section


class MonitorSettings(Section):
    """``[monitor]``: sampling, history, the ``/metrics`` endpoint and alert thresholds."""

    history_retention_days: int = Field(365, ge=1, le=3650, description="days the hourly history is kept")
    sample_interval_seconds: int = Field(10, ge=2, le=3600,
                                         description="seconds between samples (one pass over all VMs)")
    command_timeout: float = Field(5.0, gt=0, le=60, description="seconds allowed per host query")
    slow_every: int = Field(
        6, ge=1, le=360,
        description="read ZFS (FreeBSD) and the driver's own VM counters every this many samples (host commands)")
    history: bool = Field(True, description="keep history in the database (false: live values only)")
    # /metrics: refused unless a token hash or an allowed address is configured.
    metrics_token_sha256: str = Field(
        "", pattern=r"^([0-9a-f]{64})?$",
        description="SHA-256 (hex) of the bearer token /metrics accepts (the token itself is not stored)")
    metrics_allow: list[str] = Field(
        default_factory=list, description="addresses or networks (CIDR) allowed to read /metrics without a token")
    # Thresholds with hysteresis: raised at/over `*_high` for `sustain` samples, cleared under `*_clear`.
    sustain: int = Field(3, ge=1, le=100, description="samples a value must stay over its threshold to raise it")
    cpu_high: float = Field(90.0, gt=0, le=100, description="host CPU %, and a VM's CPU % of its vCPUs, raising")
    cpu_clear: float = Field(75.0, ge=0, le=100, description="CPU % under which the CPU alert clears")
    memory_high: float = Field(90.0, gt=0, le=100, description="host memory used %, raising")
    memory_clear: float = Field(80.0, ge=0, le=100, description="host memory used % clearing")
    load_high: float = Field(2.0, gt=0, description="host 1-minute load per CPU, raising")
    load_clear: float = Field(1.5, ge=0, description="host 1-minute load per CPU, clearing")
    pool_capacity_high: float = Field(85.0, gt=0, le=100, description="ZFS pool capacity %, raising")
    pool_capacity_clear: float = Field(80.0, ge=0, le=100, description="ZFS pool capacity %, clearing")

    @field_validator("metrics_allow")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        """Each entry must be an IP address or network (``10.0.0.0/8``)."""
        for entry in value:
            try:
                ipaddress.ip_network(entry, strict=False)
            except ValueError:
                raise ValueError(f"{entry!r} is not an IP address or network") from None
        return value
