"""The ``[webui]`` settings section."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from bhype_core.config import Section

BUNDLED_ASSETS = Path(__file__).parent / "static"


class WebuiSettings(Section):
    """``[webui]``: what the browser interface serves and how sessions behave."""

    title: str = Field("bHype", min_length=1, max_length=64, description="name shown in the page title")
    assets_dir: Path | None = Field(None, description="built pages; unset = the bundled ones")
    session_timeout_minutes: int = Field(60, ge=1, le=1440, description="idle minutes before a login expires")

    @property
    def effective_assets_dir(self) -> Path:
        """The directory actually served."""
        return self.assets_dir or BUNDLED_ASSETS
