"""The ``zfs`` plugin's hook implementations."""

from __future__ import annotations

from collections.abc import Callable

from bhype_core.hookspecs import hookimpl
from bhype_core.registry import RouterEntry, SettingsSection
from bhype_zfs.api import make_router
from bhype_zfs.settings import ZfsSettings


@hookimpl
def bhype_register_settings(register: Callable[[SettingsSection], None]) -> None:
    """Declare the ``[zfs]`` section."""
    register(SettingsSection(name="zfs", model=ZfsSettings))


@hookimpl
def bhype_register_routers(register: Callable[[RouterEntry], None]) -> None:
    """Mount ``/api/v1/zfs``."""
    register(RouterEntry(name="zfs", router=make_router()))
