"""Alerts with hysteresis: a value at or over its ``high`` level for ``sustain`` samples raises
``monitor.threshold.raised``; once it falls under its (lower) ``clear`` level
``monitor.threshold.cleared`` follows. A pool that is not ONLINE raises
``monitor.pool.degraded`` (cleared when ONLINE again); a VM whose hypervisor ended without a
stop asked for raises ``monitor.vm.stopped_unexpectedly``. Which alerts are up is kept in the
fact ``monitor.alarms`` so a restarted worker neither repeats nor forgets them.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bhype_core.plugin_api import Event, EventKind

RAISED = "monitor.threshold.raised"
CLEARED = "monitor.threshold.cleared"
POOL_DEGRADED = "monitor.pool.degraded"
VM_STOPPED = "monitor.vm.stopped_unexpectedly"
ALARMS_FACT = "monitor.alarms"

_FIELDS = {"alarm": "what is watched (host.cpu, vm:web1.cpu, pool:tank.capacity …)",
           "value": "the value when raised or cleared", "threshold": "the level it crossed",
           "subject": "the host, VM or pool"}
EVENT_KINDS = (
    EventKind(RAISED, "warning", "a monitored value stayed over its threshold (CPU, memory, load, pool capacity)",
              _FIELDS),
    EventKind(CLEARED, "info", "a raised monitoring alert is over (the value fell under its clear level)", _FIELDS),
    EventKind(POOL_DEGRADED, "error", "a ZFS pool is not ONLINE (DEGRADED, FAULTED, SUSPENDED …)",
              {"pool": "the pool's name", "health": "what zpool list reports"}),
    EventKind(VM_STOPPED, "error", "a VM's hypervisor process ended without a stop being asked for",
              {"vm": "the VM's name", "state": "the state the driver reports", "detail": "why, when known"}),
)


@dataclass(frozen=True)
class Check:
    """One watched value: its alarm key, subject, current value, levels and the VM owner."""

    alarm: str
    subject: str
    value: float | None
    high: float
    clear: float
    owner: str | None = None


def checks(snapshot: dict[str, Any], settings: Any) -> list[Check]:
    """Every value the settings watch in one snapshot."""
    host = snapshot.get("host", {}).get("metrics", {})
    cpus = snapshot.get("host", {}).get("cpus") or 1
    found = [
        Check("host.cpu", "host", host.get("cpu_percent"), settings.cpu_high, settings.cpu_clear),
        Check("host.memory", "host", host.get("mem_percent"), settings.memory_high, settings.memory_clear),
        Check("host.load", "host", host["load1"] / cpus if "load1" in host else None,
              settings.load_high, settings.load_clear),
    ]
    for pool in snapshot.get("pools", []):
        found.append(Check(f"pool:{pool['name']}.capacity", f"pool:{pool['name']}", pool.get("cap"),
                           settings.pool_capacity_high, settings.pool_capacity_clear))
    for vm in snapshot.get("vms", {}).values():
        metrics = vm.get("metrics", {})
        if "cpu_percent" in metrics:
            share = metrics["cpu_percent"] / max(1, vm.get("cpus") or 1)
            found.append(Check(f"vm:{vm['name']}.cpu", f"vm:{vm['name']}", share, settings.cpu_high,
                               settings.cpu_clear, vm.get("owner")))
    return found


class Alarms:
    """The alert state between samples; :meth:`update` returns the events due now."""

    def __init__(self, load: Callable[[], dict[str, Any] | None], save: Callable[[dict[str, Any]], None]) -> None:
        self._save = save
        stored = load() or {}
        self.raised: set[str] = set(stored.get("raised", []))
        self.over: dict[str, int] = {}

    def update(self, snapshot: dict[str, Any], stopped: list[dict[str, Any]], settings: Any) -> list[Event]:
        """Compare one snapshot against the thresholds; the events to deliver."""
        events: list[Event] = []
        before = set(self.raised)
        for check in checks(snapshot, settings):
            if check.value is None:
                continue
            data = {"alarm": check.alarm, "value": round(check.value, 2), "subject": check.subject}
            if check.alarm not in self.raised:
                self.over[check.alarm] = self.over.get(check.alarm, 0) + 1 if check.value >= check.high else 0
                if self.over[check.alarm] >= settings.sustain:
                    self.raised.add(check.alarm)
                    events.append(Event(RAISED, f"{check.alarm} at {check.value:.1f} (threshold {check.high:g})",
                                        severity="warning", subject=check.subject, user=check.owner,
                                        data={**data, "threshold": check.high}))
            elif check.value < check.clear:
                self.raised.discard(check.alarm)
                self.over[check.alarm] = 0
                events.append(Event(CLEARED, f"{check.alarm} back to {check.value:.1f} (under {check.clear:g})",
                                    subject=check.subject, user=check.owner, data={**data, "threshold": check.clear}))
        for pool in snapshot.get("pools", []):
            alarm = f"pool:{pool['name']}.health"
            if pool.get("health") != "ONLINE" and alarm not in self.raised:
                self.raised.add(alarm)
                events.append(Event(POOL_DEGRADED, f"pool {pool['name']} is {pool.get('health')}", severity="error",
                                    subject=f"pool:{pool['name']}",
                                    data={"pool": pool["name"], "health": pool.get("health")}))
            elif pool.get("health") == "ONLINE" and alarm in self.raised:
                self.raised.discard(alarm)
                events.append(Event(CLEARED, f"pool {pool['name']} is ONLINE again", subject=f"pool:{pool['name']}",
                                    data={"alarm": alarm, "value": 0, "subject": f"pool:{pool['name']}",
                                          "threshold": 0}))
        for vm in stopped:
            if vm.get("state") == "crashed":
                why = vm.get("detail") or "crashed"
                events.append(Event(VM_STOPPED, f"VM {vm['name']} stopped unexpectedly: {why}",
                                    severity="error", subject=f"vm:{vm['name']}", user=vm.get("owner"),
                                    data={"vm": vm["name"], "state": vm["state"], "detail": vm.get("detail", "")}))
        if self.raised != before:
            self._save({"raised": sorted(self.raised)})
        return events
