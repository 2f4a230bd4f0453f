"""Events and the one fan-out that delivers them to every ``bhype_notify`` implementation."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import pluggy

from bhype_core.event_kinds import SEVERITIES, check_kind
from bhype_core.hookcall import call_isolated

log = logging.getLogger(__name__)

__all__ = ["SEVERITIES", "DeliveryFailure", "Event", "notify"]


@dataclass(frozen=True)
class Event:
    """Something users or monitoring should hear about.

    ``kind`` is a dotted name (``task.failed``, ``vm.crashed``, ``pkg.vulnerable``) registered
    as an :class:`~bhype_core.event_kinds.EventKind` (the catalog says its fields and meaning);
    ``subject`` names what it is about (``vm:web1``); ``user`` whom it concerns (None: admins).
    """

    kind: str
    message: str
    severity: str = "info"
    subject: str | None = None
    user: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    time: datetime = field(default_factory=lambda: datetime.now(UTC))

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}, not {self.severity!r}")

    def to_dict(self) -> dict[str, Any]:
        body = asdict(self)
        body["time"] = self.time.isoformat()
        return body


@dataclass(frozen=True)
class DeliveryFailure:
    """A plugin whose ``bhype_notify`` raised, and what it raised."""

    plugin: str
    error: str


def notify(pm: pluggy.PluginManager, event: Event, runtime: Any = None) -> list[DeliveryFailure]:
    """Deliver ``event`` to every plugin; each plugin's failure is logged and returned,
    never raised, so one broken notifier cannot stop the others or the caller.

    ``runtime`` is handed to implementations that ask for it (their settings live there); with
    a runtime, an event whose kind is not in its registry's catalog warns
    (:class:`~bhype_core.event_kinds.UnknownEventKindWarning`) and is still delivered.
    """
    registry = getattr(runtime, "registry", None)
    if registry is not None:
        check_kind(registry.event_kinds, event.kind)
    failures: list[DeliveryFailure] = []
    for raised in call_isolated(pm, "bhype_notify", event=event, runtime=runtime):
        error = raised.error
        log.error("plugin %s failed to deliver event %s", raised.plugin, event.kind,
                  exc_info=(type(error), error, error.__traceback__))
        failures.append(DeliveryFailure(raised.plugin, f"{type(error).__name__}: {error}"))
    return failures
