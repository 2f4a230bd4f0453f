"""Checks shared by every way into the task queue: a submission's kind and arguments, and a
periodic job's crontab schedule."""

from __future__ import annotations

import inspect
import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from huey import crontab

from bhype_core.errors import PluginError, ValidationErrors
from bhype_core.tasks.serializer import check_json

if TYPE_CHECKING:
    from bhype_core.registry import PeriodicJob, Registry, TaskKind


CRON_FIELDS = ("minute", "hour", "day", "month", "day_of_week")


@dataclass(frozen=True)
class JobSchedule:
    """A periodic job's schedule as resolved at start-up: its crontab fields (``None``: not
    scheduled under the loaded settings) and huey's test of a minute against them."""

    fields: tuple[str, ...] | None
    test: Callable[[Any], bool] | None

    def __call__(self, at: Any) -> bool:
        return self.test is not None and bool(self.test(at))

    def describe(self) -> str:
        """``*/15 2 * * 1-5``, or ``off`` when the settings left the job unscheduled."""
        return " ".join(self.fields) if self.fields is not None else "off"


def job_schedule(job: PeriodicJob, plugin: str, settings: Any = None) -> JobSchedule:
    """``job``'s schedule: its static crontab fields, or what ``job.schedule(settings)`` returns
    (strict: a malformed field is an error, not ignored).

    :raises PluginError: a field is not valid crontab syntax, or ``job.schedule`` raised or
        returned something else than a mapping of crontab fields (names job and plugin).
    """
    fields = {name: getattr(job, name) for name in CRON_FIELDS}
    if job.schedule is not None:
        try:
            chosen = job.schedule(settings)
            if chosen is None:
                return JobSchedule(None, None)
            unknown = sorted(set(chosen) - set(CRON_FIELDS))
            if unknown or not all(isinstance(value, str) for value in chosen.values()):
                raise ValueError(f"the schedule callable returned {dict(chosen)!r}: expected string values "
                                 f"for {', '.join(CRON_FIELDS)} only")
        except Exception as exc:  # a plugin's callable: any failure stops start-up, named
            raise PluginError(f"periodic job {job.name!r} of plugin {plugin!r} has a bad schedule: "
                              f"{type(exc).__name__}: {exc}") from None
        fields.update(chosen)
    ordered = tuple(fields[name] for name in CRON_FIELDS)
    try:
        return JobSchedule(ordered, crontab(*ordered, strict=True))
    except ValueError as exc:
        raise PluginError(
            f"periodic job {job.name!r} of plugin {plugin!r} has a bad schedule: {exc}"
        ) from None


def validate_submission(registry: Registry, kind: str, arguments: Any, user: str | None) -> None:
    """Check a submission before anything is stored.

    :raises ValidationErrors: every problem, with its field path (``kind``,
        ``arguments.<name>``, ``user``).
    """
    errors = ValidationErrors()
    catalog = registry.tasks
    if kind not in catalog:
        known = ", ".join(sorted(catalog.names())) or "none"
        errors.add("kind", f"unknown task kind {kind!r} (known: {known})")
    if not isinstance(arguments, dict):
        errors.add("arguments", f"must be an object of named arguments, not {type(arguments).__name__}")
    else:
        try:
            # Both: check_json refuses non-string keys (json.dumps would silently stringify
            # them), json.dumps refuses dates (check_json would tag them): plain JSON only,
            # as the Task row stores it.
            check_json(arguments, "the value")
            json.dumps(arguments, allow_nan=False)
        except (TypeError, ValueError) as exc:
            errors.add("arguments", str(exc))
        if kind in catalog:
            _check_signature(catalog[kind], arguments, errors)
    if user is not None and (not isinstance(user, str) or not user):
        errors.add("user", "must be a non-empty user name or None")
    errors.raise_if_any()


def _check_signature(kind: TaskKind, arguments: dict[str, Any], errors: ValidationErrors) -> None:
    """Name every argument ``kind.run`` would refuse: unknown ones and missing required ones."""
    try:
        parameters = list(inspect.signature(kind.run).parameters.values())[1:]  # skip context
    except (TypeError, ValueError):  # no introspectable signature: let the task decide
        return
    by_name = {
        p.name: p for p in parameters if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    }
    takes_any = any(p.kind is p.VAR_KEYWORD for p in parameters)
    for name in arguments:
        if name not in by_name and not takes_any:
            errors.add(f"arguments.{name}", f"task kind {kind.name} takes no argument {name!r}")
    for name, parameter in by_name.items():
        if parameter.default is parameter.empty and name not in arguments:
            errors.add(f"arguments.{name}", f"required by task kind {kind.name}")


def bind_periodic_jobs(registry: Registry, settings: Any = None) -> dict[str, JobSchedule]:
    """Every periodic job's schedule, by job name, resolved with ``settings`` and checked at
    start-up.

    :raises PluginError: a job's schedule is not valid crontab syntax, or it names a task kind
        nobody registered (names job and plugin).
    """
    schedules = {}
    catalog = registry.periodic_jobs
    for job in catalog:
        plugin = catalog.plugin_of(job.name)
        if job.kind not in registry.tasks:
            raise PluginError(f"periodic job {job.name!r} of plugin {plugin!r} names task kind {job.kind!r}, "
                              "which no plugin registered")
        schedules[job.name] = job_schedule(job, plugin, settings)
    return schedules
