"""The ``backup`` plugin's hook implementations."""

from __future__ import annotations

from collections.abc import Callable

from bhype_backup.api import make_router
from bhype_backup.settings import BackupSettings
from bhype_core.hookspecs import hookimpl
from bhype_core.registry import RouterEntry, SettingsSection


@hookimpl
def bhype_register_settings(register: Callable[[SettingsSection], None]) -> None:
    """Declare the ``[backup]`` section."""
    register(SettingsSection(name="backup", model=BackupSettings))


@hookimpl
def bhype_register_routers(register: Callable[[RouterEntry], None]) -> None:
    """Mount ``/api/v1/backup``."""
    register(RouterEntry(name="backup", router=make_router()))
