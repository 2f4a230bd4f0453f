"""The one factory that builds bHype's plugin manager, and what it knows about each plugin."""

from __future__ import annotations

import importlib.metadata as metadata
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from types import ModuleType

import pluggy
from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import Version

from bhype_core import __version__, hookspecs
from bhype_core.errors import PluginError

log = logging.getLogger(__name__)

ENTRYPOINT_GROUP = "bhype"
CORE_DISTRIBUTION = "bhype-core"


@dataclass
class PluginInfo:
    """What ``bhype plugins`` and ``GET /api/v1/plugins`` show for one plugin."""

    name: str
    distribution: str | None
    version: str | None
    status: str  # "active" or "blocked"
    reason: str = ""
    hooks: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "status": self.status,
            "reason": self.reason,
            "hooks": self.hooks,
        }


class BhypePluginManager(pluggy.PluginManager):
    """A pluggy manager that also remembers blocked plugins and where each plugin came from."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT_NAME)
        self.add_hookspecs(hookspecs)
        # Plugins that declare hooks (the web UI) add them as they register: bhype_add_hookspecs.
        self.hook.bhype_add_hookspecs.call_historic(kwargs={"pm": self})
        self.blocked: dict[str, PluginInfo] = {}
        self._origins: dict[str, tuple[str | None, str | None]] = {}

    def register_plugin(
        self,
        plugin: object,
        name: str,
        distribution: str | None = None,
        version: str | None = None,
    ) -> None:
        """Register ``plugin`` under ``name``; a contract violation blocks it instead."""
        try:
            self.register(plugin, name=name)
        except (ValueError, pluggy.PluginValidationError) as exc:
            self.block(name, distribution, version, f"does not fit bHype's hooks: {exc}")
            return
        self._origins[name] = (distribution, version)

    def block(self, name: str, distribution: str | None, version: str | None, reason: str) -> None:
        """Record ``name`` as blocked, with why; a blocked plugin is shown, never silently absent."""
        log.warning("plugin %s blocked: %s", name, reason)
        if self.has_plugin(name):
            self.unregister(name=name)
        self.blocked[name] = PluginInfo(name, distribution, version, "blocked", reason)

    def infos(self) -> list[PluginInfo]:
        """Every plugin, active or blocked, sorted by name."""
        result = list(self.blocked.values())
        for name, plugin in self.list_name_plugin():
            if plugin is None:
                continue
            distribution, version = self._origins.get(name, (None, None))
            hooks = sorted(caller.name for caller in self.get_hookcallers(plugin) or [])
            result.append(PluginInfo(name, distribution, version, "active", "", hooks))
        return sorted(result, key=lambda info: info.name)


def core_requirement(dist: metadata.Distribution) -> Requirement | None:
    """The ``bhype-core`` requirement a distribution declares, if any."""
    for line in dist.requires or []:
        try:
            requirement = Requirement(line)
        except InvalidRequirement:
            continue
        if requirement.name.lower().replace("_", "-") == CORE_DISTRIBUTION and not requirement.marker:
            return requirement
    return None


def incompatibility(dist: metadata.Distribution | None) -> str | None:
    """Why a plugin distribution cannot run with this core, or None when it can."""
    if dist is None or dist.metadata["Name"].lower().replace("_", "-") == CORE_DISTRIBUTION:
        return None
    requirement = core_requirement(dist)
    if requirement is None:
        return f"{dist.metadata['Name']} does not declare which bhype-core versions it supports"
    if not requirement.specifier.contains(Version(__version__), prereleases=True):
        return (
            f"{dist.metadata['Name']} {dist.version} needs bhype-core{requirement.specifier}, "
            f"this is bhype-core {__version__}"
        )
    return None


def make_plugin_manager(
    load_entrypoints: bool = True,
    disabled: Iterable[str] = (),
    plugins: Iterable[tuple[str, object]] = (),
) -> BhypePluginManager:
    """Build the plugin manager.

    :param load_entrypoints: load every ``bhype`` entry point: the core's built-ins and all
        installed plugins (tests pass ``False`` and register exactly what they need).
    :param disabled: plugin names to block (``core.disabled_plugins``,
        ``BHYPE_DISABLED_PLUGINS``).
    :param plugins: extra ``(name, plugin)`` pairs to register (tests, embedding).
    """
    pm = BhypePluginManager()
    disabled = set(disabled)
    if load_entrypoints:
        for entry_point in sorted(metadata.entry_points(group=ENTRYPOINT_GROUP), key=lambda e: e.name):
            _load_entry_point(pm, entry_point, disabled)
    for name, plugin in plugins:
        if name in disabled:
            pm.block(name, None, None, "disabled by configuration")
        else:
            pm.register_plugin(plugin, name)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(str(exc)) from exc
    return pm


def _load_entry_point(pm: BhypePluginManager, entry_point: metadata.EntryPoint, disabled: set[str]) -> None:
    dist = entry_point.dist
    dist_name = dist.metadata["Name"] if dist else None
    version = dist.version if dist else None
    name = entry_point.name
    if name in disabled:
        pm.block(name, dist_name, version, "disabled by configuration")
        return
    if pm.has_plugin(name) or name in pm.blocked:
        # Keep the first; show the second under its distribution so neither vanishes silently.
        pm.blocked[f"{name} ({dist_name})"] = PluginInfo(
            name, dist_name, version, "blocked", f"another plugin is already registered as {name!r}"
        )
        return
    reason = incompatibility(dist)
    if reason:
        pm.block(name, dist_name, version, reason)
        return
    try:
        plugin: ModuleType | object = entry_point.load()
    except Exception as exc:  # any import failure blocks the plugin, with its error shown
        pm.block(name, dist_name, version, f"failed to load: {type(exc).__name__}: {exc}")
        return
    pm.register_plugin(plugin, name, dist_name, version)
