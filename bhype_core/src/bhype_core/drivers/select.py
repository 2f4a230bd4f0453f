"""Choosing the hypervisor driver by name at start-up: ``core.driver``, or the platform's."""

from __future__ import annotations

from typing import Any

from bhype_core.drivers.base import HypervisorDriver
from bhype_core.errors import ConfigError
from bhype_core.host.platform import detect_platform

DEFAULT_DRIVERS = {"freebsd": "bhyve", "linux": "qemu"}


def driver_name(runtime: Any) -> str:
    """``core.driver``, or for ``auto`` the platform's driver (bhyve on FreeBSD, qemu on Linux,
    the platform per ``core.platform`` or detection)."""
    core = runtime.settings.core
    if core.driver != "auto":
        return core.driver
    return DEFAULT_DRIVERS[detect_platform(core.platform)]


def select_driver(runtime: Any) -> HypervisorDriver:
    """Build the driver this host uses from the registered :class:`DriverEntry` records.

    :raises ConfigError: no driver of that name is registered (naming ``core.driver`` and the
        registered ones), or it does not run on this platform.
    """
    name = driver_name(runtime)
    entry = runtime.registry.drivers.get(name)
    if entry is None:
        known = ", ".join(sorted(runtime.registry.drivers.names())) or "none"
        raise ConfigError(f"core.driver: no driver named {name!r} is registered (registered: {known})")
    platform = detect_platform(runtime.settings.core.platform)
    if platform not in entry.platforms:
        raise ConfigError(f"core.driver: driver {name!r} runs on {', '.join(entry.platforms)}, not on {platform}")
    return entry.factory(runtime)
