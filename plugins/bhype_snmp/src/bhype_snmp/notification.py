"""One event as a notification: the typed var-binds of BHYPE-MIB's ``bhypeEvent`` (pure)."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

from bhype_core.plugin_api import Event, local_host_name
from bhype_snmp import oids

TEXT_MAX = 255  # DisplayString's SIZE (RFC 2579): longer texts are cut, marked with "…"
UNSIGNED32_MAX = 2**32 - 1


@dataclass(frozen=True)
class Notification:
    """What the sender sends: its notification OID, the event's kind and severity (for filters and
    rate limits) and the var-binds as ``(name, value)``; values are ``str`` (DisplayString),
    ``int`` (INTEGER/Unsigned32) or ``bytes`` (DateAndTime)."""

    oid: tuple[int, ...]
    kind: str
    severity: str
    varbinds: list[tuple[str, Any]] = field(default_factory=list)
    event_id: str = ""


def _text(value: Any, limit: int = TEXT_MAX) -> str:
    text = "" if value is None else str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def date_and_time(moment: datetime) -> bytes:
    """``moment`` as SNMPv2-TC DateAndTime (RFC 2579): 11 octets, UTC ("+" 0:00)."""
    moment = moment.astimezone(UTC)
    return bytes([moment.year >> 8, moment.year & 0xFF, moment.month, moment.day, moment.hour,
                  moment.minute, moment.second, moment.microsecond // 100000, ord("+"), 0, 0])


def vm_of(event: Event) -> str:
    """The VM an event is about: ``data["vm"]`` or a ``vm:<name>`` subject (``""``: none)."""
    if isinstance(event.data.get("vm"), str):
        return event.data["vm"]
    if event.subject and event.subject.startswith("vm:"):
        return event.subject.removeprefix("vm:")
    return ""


def task_id_of(event: Event) -> int:
    """The task an event is about (``data["task_id"]`` or a ``task:<id>`` subject); 0: none."""
    value = event.data.get("task_id")
    if value is None and event.subject and event.subject.startswith("task:"):
        value = event.subject.removeprefix("task:")
    try:
        number = int(value) if value is not None else 0
    except (TypeError, ValueError):
        return 0
    return number if 0 <= number <= UNSIGNED32_MAX else 0


def link_of(web_url: str, vm: str, task_id: int) -> str:
    """The web UI page about the event: the task's, else the VM's, else the dashboard."""
    if not web_url:
        return ""
    base = web_url.rstrip("/")
    if task_id:
        return f"{base}/ui/tasks/{task_id}"
    if vm:
        return f"{base}/ui/vms/{quote(vm, safe='')}"
    return f"{base}/ui/"


def host_name(runtime: Any) -> str:
    """The host name notifications carry: ``[snmp] host_name``, else this host's name in the
    group (``[host] name``, else the machine's)."""
    return runtime.settings.section("snmp").host_name or local_host_name(runtime)


def build(event: Event, *, host: str, web_url: str = "", vm_uuid: str = "",
          oid: tuple[int, ...] = oids.EVENT_NOTIFICATION) -> Notification:
    """The ``bhypeEvent`` notification for ``event`` (any kind: the kind travels as a var-bind,
    so kinds plugins register later need no new MIB object). ``vm_uuid`` is looked up by the
    caller (the event may carry it as ``data["vm_uuid"]``)."""
    vm = vm_of(event)
    task_id = task_id_of(event)
    event_id = str(event.data.get("event_id") or uuid.uuid4())
    varbinds: list[tuple[str, Any]] = [
        ("bhypeEventId", _text(event_id, 64)),
        ("bhypeEventKind", _text(event.kind, 64)),
        ("bhypeEventSeverity", oids.SEVERITY_VALUES[event.severity]),
        ("bhypeEventHost", _text(host)),
        ("bhypeEventVmName", _text(vm)),
        ("bhypeEventVmUuid", _text(event.data.get("vm_uuid") or vm_uuid, 36)),
        ("bhypeEventUser", _text(event.user or "", 64)),
        ("bhypeEventTaskId", task_id),
        ("bhypeEventText", _text(event.message)),
        ("bhypeEventLink", _text(link_of(web_url, vm, task_id))),
        ("bhypeEventSubject", _text(event.subject or "")),
        ("bhypeEventTime", date_and_time(event.time)),
    ]
    return Notification(oid=oid, kind=event.kind, severity=event.severity, varbinds=varbinds, event_id=event_id)


def test_notification(*, host: str, web_url: str = "", manager: str = "") -> Notification:
    """What ``bhype snmp manager test`` sends: ``bhypeTestNotification`` with the same objects."""
    event = Event(kind="snmp.test", message=f"bHype test notification for manager {manager}".strip(),
                  severity="info", subject=f"snmp-manager:{manager}" if manager else None)
    return build(event, host=host, web_url=web_url, oid=oids.TEST_NOTIFICATION)
