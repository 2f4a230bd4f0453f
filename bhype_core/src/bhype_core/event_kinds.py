"""The event-kind catalog: every ``Event.kind`` bHype or a plugin may deliver, with its severity,
its ``data`` fields and what it means.

Consumers of ``bhype_notify`` read the catalog (an SNMP plugin generates its MIB and filters by
severity from it, the web UI labels its popups) through :func:`bhype_core.plugin_api.event_kinds`;
``GET /api/v1/event-kinds`` lists it. The core's own kinds are in :data:`CORE_EVENT_KINDS`;
plugins declare theirs with the ``bhype_register_event_kinds`` hook.

Delivering an event whose kind nobody registered warns with :class:`UnknownEventKindWarning`
(production keeps delivering it: a notification is never lost over a catalog gap); the test
suite turns that warning into an error (``filterwarnings`` in ``pyproject.toml``), so a kind
that is not declared fails its plugin's tests.
"""

from __future__ import annotations

import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

SEVERITIES = ("info", "warning", "error", "critical")


class UnknownEventKindWarning(UserWarning):
    """An event was delivered whose kind no plugin registered (an error under the test suite)."""


@dataclass(frozen=True)
class EventKind:
    """One kind of event: ``name`` (dotted, prefixed with the plugin's section: ``zfs.pool_health``),
    its usual ``severity`` (a single event may be louder or quieter), the keys of its ``data``
    (``fields``: key → what it holds) and a one-line ``description`` for people."""

    name: str
    severity: str
    description: str
    fields: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"event kind {self.name}: severity must be one of {', '.join(SEVERITIES)}, "
                             f"not {self.severity!r}")
        if not self.name or "." not in self.name:
            raise ValueError(f"event kind {self.name!r}: the name must be dotted (<section>.<what>)")

    def to_dict(self) -> dict[str, Any]:
        """The kind as JSON (``GET /api/v1/event-kinds``)."""
        return {"name": self.name, "severity": self.severity, "description": self.description,
                "fields": dict(self.fields)}


_TASK_FIELDS = {"task_id": "the task's id", "kind": "the task's kind"}

CORE_EVENT_KINDS: tuple[EventKind, ...] = (
    EventKind("task.failed", "error", "A task ended with an error; addressed to its owner.",
              {**_TASK_FIELDS, "error": "the error as the API shows it (code, message, detail)"}),
    EventKind("task.interrupted", "warning",
              "A task's worker stopped while running it; recovery marked it interrupted.",
              {**_TASK_FIELDS, "worker_host": "host of the worker that ran it",
               "worker_pid": "process id of that worker"}),
    EventKind("task.cleaned_up", "warning",
              "Recovery undid what an interrupted task had made (its undo journal); failures listed.",
              {**_TASK_FIELDS, "undone": "the steps undone", "failed": "the steps that could not be undone"}),
    EventKind("host.orphans_removed", "warning",
              "The start-up sweep removed VM files, taps or processes no record owned.",
              {"removed": "what was removed", "failed": "what could not be removed"}),
    EventKind("vm.crashed", "error", "A VM's hypervisor process exited without being asked to.",
              {"exit_status": "the hypervisor's exit status", "detail": "what the supervisor recorded",
               "crash_id": "identifies the crash (one event per crash)"}),
)


def check_kind(kinds: Iterable[str] | Mapping[str, Any], kind: str) -> None:
    """Warn with :class:`UnknownEventKindWarning` when ``kind`` is not in ``kinds``."""
    if kind not in kinds:
        warnings.warn(UnknownEventKindWarning(
            f"event kind {kind!r} is not registered (declare it with bhype_register_event_kinds)"
        ), stacklevel=3)
