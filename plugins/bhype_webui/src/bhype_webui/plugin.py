"""The ``webui`` plugin's hook implementations."""

from __future__ import annotations

from collections.abc import Callable

from bhype_core.hookspecs import hookimpl
from bhype_core.registry import RouterEntry, SettingsSection
from bhype_webui.api import make_router
from bhype_webui.settings import WebuiSettings


@hookimpl
def bhype_register_settings(register: Callable[[SettingsSection], None]) -> None:
    """Declare the ``[webui]`` section."""
    register(SettingsSection(name="webui", model=WebuiSettings))


@hookimpl
def bhype_register_routers(register: Callable[[RouterEntry], None]) -> None:
    """Mount ``/api/v1/webui``."""
    register(RouterEntry(name="webui", router=make_router()))
