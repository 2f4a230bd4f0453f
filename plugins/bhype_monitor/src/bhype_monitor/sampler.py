"""The ``monitor`` sampler: once per host (the core's sampler lease), every
``sample_interval_seconds``, one pass over the host and all VMs; it publishes the live
snapshot, appends the history and raises or clears alerts.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any

import psutil
from sqlalchemy.exc import OperationalError

from bhype_core.plugin_api import CommandError, detect_platform, local_host_name
from bhype_monitor import live
from bhype_monitor.history import History, tiers
from bhype_monitor.host_sample import HostReader
from bhype_monitor.settings import MonitorSettings
from bhype_monitor.thresholds import ALARMS_FACT, Alarms
from bhype_monitor.vm_sample import VMReader
from bhype_monitor.zfs_sample import read_zfs

log = logging.getLogger("bhype.monitor")
HOST_PREFIX = "host:"


def host_series(name: str) -> str:
    """The history series of group host ``name`` (issue 22: every host of a group records its
    own in the shared table; a single host's is ``host:<its name>`` too)."""
    return f"{HOST_PREFIX}{name}"


def vm_series(uuid: str) -> str:
    """The history series of a VM (by UUID: a renamed VM keeps its history)."""
    return f"vm:{uuid}"


def make_history(runtime: Any, clock: Callable[[], float] = time.time) -> History:
    """The history store for this runtime's settings."""
    settings: MonitorSettings = runtime.settings.section("monitor")
    return History(runtime.engine, tiers(settings.sample_interval_seconds, settings.history_retention_days), clock)


def adopt_single_host_history(runtime: Any, name: str) -> int:
    """Give the host history recorded before hosts had names (series ``host:``, as the
    ``monitor_0002`` migration renamed ``host``) to host ``name``, unless another host has
    recorded its own already (then it is not this host's to take: it stays unowned). The first
    host of a group, the former single host, adopts it, as the core's first registered host
    adopts a single-host install's VMs. Returns the rows adopted."""
    from sqlalchemy import exists, select, update
    from sqlmodel import col

    from bhype_monitor.models import MonitorSample

    series = col(MonitorSample.series)
    with runtime.engine.begin() as connection:
        if connection.execute(select(exists().where(series.like(f"{HOST_PREFIX}_%"),
                                                    series != host_series(name)))).scalar():
            return 0
        return int(connection.execute(update(MonitorSample).where(series == HOST_PREFIX)
                                      .values(series=host_series(name))).rowcount or 0)


class Monitor:
    """What the sampler thread keeps between ticks (readers' previous counters, alarms)."""

    def __init__(self, runtime: Any, clock: Callable[[], float] = time.time) -> None:
        self.runtime = runtime
        self.settings: MonitorSettings = runtime.settings.section("monitor")
        self.clock = clock
        self.host = HostReader()
        self.vms = VMReader(runtime, driver_stats_every=self.settings.slow_every)
        self.history = make_history(runtime, clock) if self.settings.history else None
        self.series = host_series(local_host_name(runtime))
        self.adopted = self.history is None  # the single host's history, taken at the first tick that can
        self.freebsd = detect_platform(runtime.settings.core.platform) == "freebsd"
        self.zfs: dict[str, Any] = {"arc": {}, "pools": []}
        self.alarms = Alarms(lambda: self._fact(ALARMS_FACT), lambda value: runtime.facts.put(ALARMS_FACT, value))
        self.ticks = 0

    def _fact(self, key: str) -> dict[str, Any] | None:
        fact = self.runtime.facts.get(key)
        return fact.value if fact else None

    def tick(self) -> dict[str, Any]:
        """One sample of everything; returns the snapshot it published."""
        self.ticks += 1
        if not self.adopted:
            try:
                adopt_single_host_history(self.runtime, local_host_name(self.runtime))
                self.adopted = True
            except OperationalError as exc:  # SQLite busy while `bhype serve` starts: the next tick
                log.warning("monitor: history not adopted yet (%s); trying again next tick", exc.orig)
        nics = psutil.net_io_counters(pernic=True)  # one read for host interfaces and every tap
        host = self.host.read(nics)
        if self.freebsd and self.ticks % self.settings.slow_every == 1:
            try:
                self.zfs = read_zfs(self.runtime.runner, self.settings.command_timeout)
            except CommandError as exc:
                log.warning("ZFS not readable: %s", exc)
        if "size" in self.zfs["arc"]:
            host["metrics"]["arc_size"] = self.zfs["arc"]["size"]
        vms = self.vms.read(nics)
        now = self.clock()
        snapshot = {"at": round(now, 3), "interval": self.settings.sample_interval_seconds,
                    "host": host, "pools": self.zfs["pools"], "vms": vms}
        live.put(self.runtime, snapshot, self.settings.sample_interval_seconds)
        if self.history is not None:
            samples = {self.series: dict(host["metrics"])}
            for pool in self.zfs["pools"]:
                samples[self.series][f"pool_{pool['name']}_cap"] = pool["cap"]
            for uuid, vm in vms.items():
                if vm["metrics"]:
                    samples[vm_series(uuid)] = vm["metrics"]
            self.history.record(samples, now)
        for event in self.alarms.update(snapshot, self.vms.stopped, self.settings):
            self.runtime.notify(event)
        return snapshot


def start(runtime: Any, clock: Callable[[], float] = time.time) -> Callable[[], Any]:
    """The :class:`~bhype_core.plugin_api.Sampler` start function: a fresh :class:`Monitor`
    whose tick runs every second and samples on each ``sample_interval_seconds`` boundary."""
    monitor = Monitor(runtime, clock)
    interval = monitor.settings.sample_interval_seconds
    due = [0.0]

    def tick() -> dict[str, Any] | None:
        now = clock()
        if now < due[0]:
            return None
        due[0] = (now // interval + 1) * interval
        return monitor.tick()

    return tick
