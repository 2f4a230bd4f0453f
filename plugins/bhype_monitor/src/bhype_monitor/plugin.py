"""The ``monitor`` plugin's hook implementations."""

from __future__ import annotations

from collections.abc import Callable

from bhype_core.hookspecs import hookimpl
from bhype_core.registry import RouterEntry, SettingsSection
from bhype_monitor.api import make_router
from bhype_monitor.settings import MonitorSettings


@hookimpl
def bhype_register_settings(register: Callable[[SettingsSection], None]) -> None:
    """Declare the ``[monitor]`` section."""
    register(SettingsSection(name="monitor", model=MonitorSettings))


@hookimpl
def bhype_register_routers(register: Callable[[RouterEntry], None]) -> None:
    """Mount ``/api/v1/monitor``."""
    register(RouterEntry(name="monitor", router=make_router()))
