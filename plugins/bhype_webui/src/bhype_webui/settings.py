"""The ``[webui]`` settings section."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from bhype_core.plugin_api import Section

BUNDLED_ASSETS = Path(__file__).parent / "static"


class WebuiSettings(Section):
    """``[webui]``: what the browser interface serves, how sessions and consoles behave."""

    title: str = Field("bHype", min_length=1, max_length=64, description="name shown in the page title")
    assets_dir: Path | None = Field(None, description="built pages; unset = the bundled ones")
    session_timeout_minutes: int = Field(60, ge=1, le=1440, description="idle minutes before a login expires")
    console_ticket_seconds: float = Field(
        30.0, gt=0, le=300, description="how long a console ticket may wait before its WebSocket opens"
    )
    console_recheck_seconds: float = Field(
        5.0, gt=0, le=300, description="how often an open console re-checks its user's access"
    )
    serial_history_kib: int = Field(
        64, ge=0, le=4096, description="recent serial output a newly joined viewer is shown first"
    )
    # The pages: notifications, live streams, the VM list.
    notification_keep_days: int = Field(
        30, ge=1, le=3650, description="days a notification stays in the web UI's list"
    )
    stream_poll_seconds: float = Field(
        1.0,
        ge=0.05,
        le=60,
        description="how often a live page stream (VM states, notifications) looks for news",
    )
    stream_max_seconds: float = Field(
        300.0,
        ge=5,
        le=3600,
        description="a live page stream ends after this and the browser reconnects, passing the login checks again",
    )
    vm_page_size: int = Field(50, ge=10, le=500, description="VMs per page of the VM list")

    @property
    def effective_assets_dir(self) -> Path:
        """The directory actually served."""
        return self.assets_dir or BUNDLED_ASSETS
