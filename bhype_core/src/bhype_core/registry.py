"""Typed records that plugins register at start-up, and the registry that collects them."""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from bhype_core.errors import PluginError
from bhype_core.event_kinds import CORE_EVENT_KINDS, EventKind

if TYPE_CHECKING:
    import pluggy
    from fastapi import APIRouter
    from pydantic import BaseModel

    from bhype_core.auth.principal import Principal


@dataclass(frozen=True)
class SettingsSection:
    """A plugin's TOML table: ``name`` (``zfs`` → ``[zfs]``) validated by ``model``."""

    name: str
    model: type[BaseModel]


@dataclass(frozen=True)
class DriverEntry:
    """A hypervisor driver. ``factory(runtime)`` builds it; ``platforms`` it runs on."""

    name: str
    factory: Callable[[Any], Any]
    platforms: tuple[str, ...] = ("freebsd", "linux")
    description: str = ""


@dataclass(frozen=True)
class StorageBackendEntry:
    """A storage backend for VM disks; ``factory(runtime, options)`` builds one datastore."""

    name: str
    factory: Callable[..., Any]
    description: str = ""


ROLES = ("admin", "operator")


@dataclass(frozen=True)
class TaskKind:
    """A kind of task the worker runs, and who may ask for it (issue 11).

    ``run(context, **arguments)`` does the work and returns a JSON-able result.
    ``locks(arguments)`` names the resources (``vm:<id>``) the task holds while it runs.

    ``role`` is the least role that may submit it: ``"admin"`` (the default, so a kind that
    declares nothing is admin-only) or ``"operator"``. ``authorize(principal, arguments,
    runtime)`` is the object check on top of the role (an operator may act only on their own
    VM, ...): it returns nothing or raises :class:`~bhype_core.errors.NotFound` (another user's
    object, the same answer as a missing one), :class:`~bhype_core.errors.Forbidden` or
    :class:`~bhype_core.errors.ValidationErrors` (``arguments.<name>`` paths are added by the
    caller). Both are enforced by :func:`bhype_core.tasks.service.submit` for every entry
    point and again by the worker before ``run``, against the task's stored owner.

    ``system`` marks a kind bHype submits itself as :data:`~bhype_core.auth.principal.SYSTEM`
    (``@system``) other than through a :class:`PeriodicJob` (whose kinds count as such
    anyway); a task owned by ``@system`` of any other kind is refused.

    ``resumable``: the kind records its steps with ``context.checkpoint(step, data)``; a task
    whose worker dies (crash, reboot) is then queued again and resumed from its last
    checkpoint (``context.resume_state``) instead of being marked ``interrupted``.
    """

    name: str
    run: Callable[..., Any]
    description: str = ""
    locks: Callable[[dict], list[str]] = field(default=lambda arguments: [])
    role: str = "admin"
    authorize: Callable[[Principal, dict, Any], None] | None = None
    system: bool = False
    resumable: bool = False

    def __post_init__(self) -> None:
        if self.role not in ROLES:
            raise PluginError(f"task kind {self.name!r}: role must be 'admin' or 'operator', not {self.role!r}")


@dataclass(frozen=True)
class UndoAction:
    """A step recovery runs to undo what an interrupted task made (see
    :mod:`bhype_core.tasks.intents`).

    ``run(context, **arguments)`` gets the interrupted task's
    :class:`~bhype_core.tasks.TaskContext` and the JSON arguments of the intent; it returns a
    line saying what it removed (or ``None`` when there was nothing to remove). It must be
    idempotent and treat "already gone" as done.
    """

    name: str
    run: Callable[..., str | None]
    description: str = ""


@dataclass(frozen=True)
class PeriodicJob:
    """A task submitted on a cron-like schedule (huey ``crontab`` fields, host local time).

    Each due run is an ordinary Task row of the registered task kind ``kind`` with
    ``arguments``, owned by the system user ``@system``: it holds the kind's locks, logs to
    the task log and shows in the task list like any task. A run still queued or running
    when the next one is due makes that next one skip.

    ``run_at_start`` also submits it once when a worker starts, for jobs whose answer must not
    wait for the schedule (reconciling VM states after a restart, probing the host).
    """

    name: str
    kind: str
    arguments: dict[str, Any] = field(default_factory=dict)
    minute: str = "*"
    hour: str = "*"
    day: str = "*"
    month: str = "*"
    day_of_week: str = "*"
    description: str = ""
    run_at_start: bool = False


@dataclass(frozen=True)
class Watcher:
    """A check the worker runs every ``interval`` seconds in its own thread.

    ``start(runtime)`` is called once when the worker starts and returns the tick function
    (which keeps whatever it needs between ticks). A tick that raises is logged and the
    watcher goes on.
    """

    name: str
    start: Callable[[Any], Callable[[], Any]]
    interval: float = 2.0
    description: str = ""


@dataclass(frozen=True)
class Sampler:
    """Work every ``interval`` seconds that a cron minute is too coarse for (monitoring samples).

    Unlike a :class:`Watcher`, a sampler runs in one worker process per host (the one holding
    its host-wide lease; another worker takes over when that one stops). ``start(runtime)`` is
    called once when the worker gets the lease and returns the tick function. A tick that
    outlasts the interval makes the ticks it overlapped skipped (counted, never queued up); a
    tick that raises is logged and counted, and the sampler goes on.
    """

    name: str
    start: Callable[[Any], Callable[[], Any]]
    interval: float = 10.0
    description: str = ""


@dataclass(frozen=True)
class RouterEntry:
    """An API router; mounted at ``prefix`` (default ``/api/v1/<name>``)."""

    name: str
    router: APIRouter
    prefix: str | None = None

    @property
    def mount_prefix(self) -> str:
        return self.prefix if self.prefix is not None else f"/api/v1/{self.name}"


@dataclass(frozen=True)
class CliCommand:
    """A ``bhype <name>`` sub-command: ``configure(parser)`` adds arguments, ``run(args)``
    does the work and returns the exit status. ``args.runtime`` holds the CLI's
    :class:`~bhype_core.runtime.Runtime` (settings, plugins, runner, queue).

    A two-word ``name`` (``"host update"``) nests the command under a core command that has
    sub-commands (``bhype host update …``); a clash with an existing sub-command, or a first
    word that is no such core command, stops start-up naming the plugin."""

    name: str
    help: str
    configure: Callable[[argparse.ArgumentParser], None]
    run: Callable[[argparse.Namespace], int]


@dataclass(frozen=True)
class ModelSet:
    """A package's database tables (``models``, SQLModel classes) and Alembic ``migrations``
    directory; ``name`` is the migration branch label."""

    name: str
    models: tuple[type, ...] = ()
    migrations: Path | None = None


@dataclass(frozen=True)
class CheckResult:
    """One line of ``bhype doctor``: ok or not, what was found, and how to fix it.

    A failed ``optional`` check is shown (bHype works without it, e.g. KVM on Linux) but does
    not make ``bhype doctor`` fail.
    """

    name: str
    ok: bool
    detail: str
    fix: str = ""
    optional: bool = False


@dataclass(frozen=True)
class DoctorCheck:
    """A read-only prerequisite check; ``run(settings)`` returns results."""

    name: str
    run: Callable[[Any], list[CheckResult]]
    platforms: tuple[str, ...] = ("freebsd", "linux")


class Named(Protocol):
    """Any record with a ``name`` (read-only, so frozen dataclasses match)."""

    @property
    def name(self) -> str: ...


T = TypeVar("T", bound=Named)


@dataclass(frozen=True)
class Registered(Generic[T]):
    """A record together with the plugin that registered it."""

    plugin: str
    item: T


class Catalog(Generic[T]):
    """Named records of one kind, each remembering its plugin; a clash is an error."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._entries: dict[str, Registered[T]] = {}

    def add(self, plugin: str, item: T) -> None:
        name = item.name
        if name in self._entries:
            other = self._entries[name].plugin
            raise PluginError(
                f"{self.what} {name!r} is registered by both plugin {other!r} and plugin {plugin!r}"
            )
        self._entries[name] = Registered(plugin, item)

    def __getitem__(self, name: str) -> T:
        return self._entries[name].item

    def get(self, name: str) -> T | None:
        entry = self._entries.get(name)
        return entry.item if entry else None

    def plugin_of(self, name: str) -> str:
        return self._entries[name].plugin

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[T]:
        return (entry.item for entry in self._entries.values())

    def __len__(self) -> int:
        return len(self._entries)

    def names(self) -> list[str]:
        return list(self._entries)


def collect(
    pm: pluggy.PluginManager, hook_name: str, what: str, catalog: Catalog[Any] | None = None
) -> Catalog[Any]:
    """Call one ``bhype_register_*`` hook on every plugin, remembering who registered what.

    Each implementation is called with its own ``register`` so a record is attributed to its
    plugin (and a name clash can name both plugins). Exceptions propagate, naming the plugin.
    ``catalog`` may come pre-filled (the core's own event kinds).
    """
    catalog = catalog if catalog is not None else Catalog(what)
    hook = getattr(pm.hook, hook_name)
    for impl in reversed(hook.get_hookimpls()):  # pluggy keeps the last registered first
        plugin_name = impl.plugin_name

        def register(item: Any, _plugin: str = plugin_name) -> None:
            catalog.add(_plugin, item)

        try:
            impl.function(**{arg: register for arg in impl.argnames})
        except PluginError:
            raise
        except Exception as exc:  # a plugin bug at start-up: name it
            raise PluginError(f"plugin {plugin_name!r} failed in {hook_name}: {exc}") from exc
    return catalog


@dataclass
class Registry:
    """Everything plugins registered at start-up, by kind."""

    settings: Catalog[SettingsSection]
    drivers: Catalog[DriverEntry]
    storage_backends: Catalog[StorageBackendEntry]
    tasks: Catalog[TaskKind]
    periodic_jobs: Catalog[PeriodicJob]
    watchers: Catalog[Watcher]
    samplers: Catalog[Sampler]
    routers: Catalog[RouterEntry]
    cli_commands: Catalog[CliCommand]
    models: Catalog[ModelSet]
    doctor_checks: Catalog[DoctorCheck]
    event_kinds: Catalog[EventKind]
    undo_actions: Catalog[UndoAction] = field(default_factory=lambda: Catalog("undo action"))

    @classmethod
    def from_plugins(cls, pm: pluggy.PluginManager) -> Registry:
        """Collect every kind of record from the plugins registered in ``pm``."""
        return cls(
            settings=collect(pm, "bhype_register_settings", "settings section"),
            drivers=collect(pm, "bhype_register_drivers", "driver"),
            storage_backends=collect(pm, "bhype_register_storage_backends", "storage backend"),
            tasks=collect(pm, "bhype_register_tasks", "task kind"),
            periodic_jobs=collect(pm, "bhype_register_periodic_jobs", "periodic job"),
            watchers=collect(pm, "bhype_register_watchers", "watcher"),
            samplers=collect(pm, "bhype_register_samplers", "sampler"),
            routers=collect(pm, "bhype_register_routers", "router"),
            cli_commands=collect(pm, "bhype_register_cli_commands", "CLI command"),
            models=collect(pm, "bhype_register_models", "model set"),
            doctor_checks=collect(pm, "bhype_register_doctor_checks", "doctor check"),
            event_kinds=collect(pm, "bhype_register_event_kinds", "event kind", core_event_kinds()),
            undo_actions=collect(pm, "bhype_register_undo_actions", "undo action"),
        )


def core_event_kinds() -> Catalog[EventKind]:
    """A catalog holding the core's own event kinds (``task.failed`` …), attributed to ``core``:
    they exist whichever plugins are loaded, so a plugin registering one is a name clash."""
    catalog: Catalog[EventKind] = Catalog("event kind")
    for kind in CORE_EVENT_KINDS:
        catalog.add("core", kind)
    return catalog
