"""The ``snmp`` plugin's hook implementations."""

from __future__ import annotations

from collections.abc import Callable

from bhype_core.plugin_api import RouterEntry, SettingsSection, hookimpl
from bhype_snmp.api import make_router
from bhype_snmp.settings import SnmpSettings


@hookimpl
def bhype_register_settings(register: Callable[[SettingsSection], None]) -> None:
    """Declare the ``[snmp]`` section."""
    register(SettingsSection(name="snmp", model=SnmpSettings))


@hookimpl
def bhype_register_routers(register: Callable[[RouterEntry], None]) -> None:
    """Mount ``/api/v1/snmp``."""
    register(RouterEntry(name="snmp", router=make_router()))
