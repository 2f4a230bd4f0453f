"""What VM code needs from the runtime: datastores, the hypervisor driver, templates.

Each is built on first use and kept in ``runtime.extras`` (one per process, nothing global).
"""

from __future__ import annotations

from typing import Any

from bhype_core.drivers.select import DEFAULT_DRIVERS
from bhype_core.errors import ConfigError, ValidationErrors
from bhype_core.storage.base import StorageBackend
from bhype_core.templates import TemplateCatalog, load_templates
from bhype_core.vm.settings import templates_dir, vm_settings

PLATFORM_DRIVERS = DEFAULT_DRIVERS  # show-command for the other platform builds its default driver


def open_datastore(runtime: Any, name: str | None = None) -> StorageBackend:
    """The storage backend of datastore ``name`` (default ``vm.default_datastore``).

    :raises ValidationErrors: no such datastore (path ``datastore``).
    :raises ConfigError: its backend is not registered by any loaded plugin.
    """
    settings = vm_settings(runtime)
    name = name or settings.default_datastore
    cache: dict[str, StorageBackend] = runtime.extras.setdefault("vm.datastores", {})
    if name in cache:
        return cache[name]
    if name not in settings.datastores:
        known = ", ".join(sorted(settings.datastores))
        raise ValidationErrors([("datastore", f"no datastore named {name!r} (configured: {known})")])
    config = settings.datastores[name]
    entry = runtime.registry.storage_backends.get(config.backend)
    if entry is None:
        known = ", ".join(runtime.registry.storage_backends.names()) or "none"
        raise ConfigError(
            f"vm.datastores.{name}.backend: no plugin registers storage backend {config.backend!r} "
            f"(registered: {known})"
        )
    backend = entry.factory(runtime, config.options(name))
    cache[name] = backend
    return backend


def driver_for(runtime: Any, platform: str) -> Any:
    """A driver for ``platform`` (``freebsd`` → bhyve, ``linux`` → qemu), e.g. to show what a
    start would run on the other platform. Building a driver never touches the host.

    :raises ValidationErrors: unknown platform (path ``platform``).
    :raises ConfigError: that driver is not registered.
    """
    if platform not in PLATFORM_DRIVERS:
        raise ValidationErrors([("platform", f"must be one of {', '.join(PLATFORM_DRIVERS)}, not {platform!r}")])
    name = PLATFORM_DRIVERS[platform]
    entry = runtime.registry.drivers.get(name)
    if entry is None:
        raise ConfigError(f"no plugin registers the {name} driver (needed for platform {platform})")
    # Not cached: the API builds it over a runner that refuses commands, and runtime.extras is
    # shared with an in-process worker, which must never get that driver.
    return entry.factory(runtime)


def active_driver(runtime: Any) -> Any:
    """The driver this host uses (``core.driver``, or by platform when ``auto``), built once
    per runner (the API's refusing runner and the worker's real one never share a driver)."""
    cached = runtime.extras.get("vm.driver")
    if cached is None or cached[0] is not runtime.runner:
        from bhype_core.drivers.select import select_driver
        from bhype_core.vm.reconcile import crash_listener

        driver = select_driver(runtime)
        driver.add_crash_listener(crash_listener(runtime))
        cached = runtime.extras["vm.driver"] = (runtime.runner, driver)
    return cached[1]


def active_platform(runtime: Any) -> str:
    """``freebsd`` or ``linux`` for this host (``core.platform``, or detected)."""
    from bhype_core.host.platform import detect_platform

    return detect_platform(runtime.settings.core.platform)


def template_catalog(runtime: Any) -> TemplateCatalog:
    """Shipped templates plus the admin directory's, read fresh (admins add files at any time)."""
    return load_templates(templates_dir(runtime))
