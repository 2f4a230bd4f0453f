"""The runtime: settings, plugins and the services built from them, assembled at start-up."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from bhype_core.config import Settings, load_settings
from bhype_core.events import DeliveryFailure, Event, notify
from bhype_core.plugins import BhypePluginManager, make_plugin_manager
from bhype_core.registry import Registry


@dataclass
class Runtime:
    """One process's view of bHype. Built once by :func:`build_runtime`; nothing global.

    Services (database engine, queue, runner) are built on first use, so a process only
    pays for what it touches.
    """

    settings: Settings
    pm: BhypePluginManager
    registry: Registry
    extras: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def engine(self) -> Any:
        """The SQLAlchemy engine for ``core.database_url``."""
        from bhype_core.db.engine import make_engine
        from bhype_core.private_files import secure_data_dir

        secure_data_dir(self.settings)
        return make_engine(self.settings.core.effective_database_url)

    @cached_property
    def queue(self) -> Any:
        """The huey instance, with every registered task kind bound to it."""
        from bhype_core.private_files import secure_data_dir
        from bhype_core.tasks.transport import make_queue

        secure_data_dir(self.settings)
        return make_queue(self.settings, self.registry, runtime=self)

    @cached_property
    def runner(self) -> Any:
        """The host command runner (local or SSH, per ``[runner]``)."""
        from bhype_core.db.models import HostCommandSink
        from bhype_core.host.runner import make_runner

        runner = make_runner(self.settings.runner)
        # The audit trail the API shows: every host command, with the user and task behind it,
        # written when it starts so a command cut off by a crash is still attributable.
        runner.add_audit_sink(HostCommandSink(self.engine))
        return runner

    @cached_property
    def local_runner(self) -> Any:
        """A runner on this machine (the worker's own), audited like :attr:`runner`.

        bHype's secret files (a backup target's SSH key, its pinned known_hosts) live in this
        machine's data directory, so an ``ssh -i KEY`` client that uses them must run here even
        when ``[runner]`` drives the datastore's host over SSH: ``zfs send`` there, ``ssh …
        zfs receive`` here (``runner.pipe(…, to=runtime.local_runner)``). It *is* :attr:`runner`
        when ``[runner] target = "local"``; a dry run wraps it the same way.
        """
        if self.settings.runner.target == "local":
            return self.runner
        from bhype_core.db.models import HostCommandSink
        from bhype_core.host.runner import make_runner

        runner = make_runner(self.settings.runner.model_copy(update={"target": "local"}))
        runner.add_audit_sink(HostCommandSink(self.engine))
        return runner

    @cached_property
    def facts(self) -> Any:
        """The host facts the worker probed (:class:`bhype_core.facts.FactStore` on :attr:`engine`)."""
        from bhype_core.facts import FactStore

        return FactStore(self.engine)

    def notify(self, event: Event) -> list[DeliveryFailure]:
        """Deliver an event to every ``bhype_notify`` implementation (failures isolated)."""
        return notify(self.pm, event, runtime=self)


def build_runtime(
    settings: Settings | None = None,
    pm: BhypePluginManager | None = None,
) -> Runtime:
    """Assemble a runtime: load settings, build the plugin manager, collect registrations and
    validate every plugin's settings section."""
    settings = settings or load_settings()
    pm = pm or make_plugin_manager(load_entrypoints=True, disabled=settings.core.disabled_plugins)
    registry = Registry.from_plugins(pm)
    settings.add_plugin_sections(registry.settings)
    return Runtime(settings=settings, pm=pm, registry=registry)
