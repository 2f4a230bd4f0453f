"""One reading of every VM on this host in one pass: the hypervisor process (psutil: CPU time,
RSS, I/O counters, start time) and the VM's taps (one interface-counter read shared by all VMs).

No command and no driver call per VM per tick once a VM's process is known: the driver is asked
(``status``, which reads the VM's state file) only for a VM whose process is not known yet or
has gone: a known one is read each tick (an ended process fails the read) and compared by pid
plus start time (psutil's ``is_running``, so a reused pid is not mistaken for the VM) every
``driver_stats_every`` ticks. On FreeBSD the driver's own stats (``bhyvectl --get-stats``,
``rctl -u``; the ``live-stats`` capability) add guest counters every ``driver_stats_every``
ticks. Direction of tap counters: the host side of a tap counts what it *sends* to the guest,
so guest ``rx`` is the tap's ``bytes_sent`` (reference next-features.md 6).
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections import namedtuple
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

from bhype_core.plugin_api import (
    DriverCapability,
    VMSpec,
    active_driver,
    find_vm,
    list_vm_summaries,
    local_host_name,
    open_datastore,
)
from bhype_monitor import procfs
from bhype_monitor.host_sample import rate

log = logging.getLogger("bhype.monitor")

ACTIVE_STATES = ("starting", "running", "stopping")
# The fields of psutil's per-NIC counters, for the ones read from /proc/PID/net/dev.
NetCounters = namedtuple("NetCounters", "bytes_sent bytes_recv packets_sent packets_recv errin errout dropin dropout")
TAPS_FILE = "taps.json"  # written by the core at start (network/taps.py): [{"tap": NAME, …}, …]


# One read of a VM's process: psutil's cpu_times, memory_info, create_time and io_counters (or None).
Reading = namedtuple("Reading", "times memory started io")
GONE = object()  # what VMReader._read answers for a process that has ended


@dataclass
class Tracked:
    """What the reader remembers about one running VM between ticks."""

    name: str
    process: psutil.Process
    taps: list[str | None]
    memory_bytes: int
    cpus: int = 1
    cpu: float = 0.0
    io: Any = None
    nics: dict[str, Any] = field(default_factory=dict)
    at: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)
    netns: int | None = None
    start_ticks: int | None = None  # procfs: the process's start time, first seen (pid-reuse check)


def read_taps(vm_dir: Path) -> list[str | None]:
    """The taps the core plugged for this VM's NICs, in NIC order (``[]``: none recorded)."""
    try:
        plugged = json.loads((Path(vm_dir) / TAPS_FILE).read_text())
    except (OSError, ValueError):
        return []
    return [entry.get("tap") if isinstance(entry, dict) else None for entry in plugged]


def parse_net_dev(text: str) -> dict[str, NetCounters]:
    """proc(5) ``/proc/net/dev``: two header lines, then ``name: rx bytes packets errs drop fifo
    frame compressed multicast tx bytes packets errs drop …`` per interface."""
    found = {}
    for line in text.splitlines()[2:]:
        name, colon, rest = line.partition(":")
        fields = rest.split()
        if not colon or len(fields) < 12:
            continue
        rx, tx = [int(v) for v in fields[:4]], [int(v) for v in fields[8:12]]
        found[name.strip()] = NetCounters(tx[0], rx[0], tx[1], rx[1], rx[2], tx[2], rx[3], tx[3])
    return found


def net_namespace(pid: int | str) -> int | None:
    """The inode of a process's network namespace (Linux; ``None`` elsewhere or unreadable)."""
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


class VMReader:
    """Reads this host's active VMs each tick (``read``); ``stopped`` lists the VMs whose
    process ended since the previous tick, with the state the driver gives them (``crashed`` =
    unexpected)."""

    def __init__(self, runtime: Any, driver_stats_every: int = 6) -> None:
        self.runtime = runtime
        self.tracked: dict[str, Tracked] = {}
        self.driver_stats_every = driver_stats_every
        self.identity_every = max(1, driver_stats_every)  # ticks between pid-reuse checks (see _read)
        self.procfs = procfs.available()  # Linux: read /proc directly (see procfs)
        self.boot_time = psutil.boot_time()
        self._ticks = 0
        self._specs: dict[str, tuple[Any, VMSpec]] = {}
        self._dirs: dict[tuple[str, str], Path] = {}
        self.stopped: list[dict[str, Any]] = []

    def _spec(self, row: Any) -> VMSpec:
        # The tick lists VMs without their specs; a spec is read when a VM is discovered or
        # stops, and kept while the row's ``updated`` is the same.
        cached = self._specs.get(row.uuid)
        if cached is None or cached[0] != row.updated:
            vm = find_vm(self.runtime, row.name)
            if vm is None or vm.uuid != row.uuid:
                raise LookupError(f"VM {row.name} is gone")
            cached = (vm.updated, VMSpec.model_validate(vm.spec))
            self._specs[row.uuid] = cached
        return cached[1]

    def _vm_dir(self, row: Any) -> Path:
        key = (row.datastore, row.name)
        if key not in self._dirs:
            self._dirs[key] = Path(open_datastore(self.runtime, row.datastore).vm_dir(row.name))
        return self._dirs[key]

    def _discover(self, row: Any, driver: Any) -> Tracked | None:
        try:
            spec = self._spec(row)
        except LookupError:  # destroyed since the tick listed it
            return None
        status = driver.status(spec, self._vm_dir(row))
        if status.pid is None:
            return None
        try:
            process = psutil.Process(status.pid)
        except psutil.Error:
            return None
        tracked = Tracked(row.name, process, read_taps(self._vm_dir(row)), int(spec.memory),
                          int(spec.cpus.count or 1))
        namespace = net_namespace(status.pid)
        # A hypervisor in another network namespace has its taps there: read them through it.
        tracked.netns = namespace if namespace is not None and namespace != net_namespace("self") else None
        return tracked

    def read(self, nics: dict[str, Any] | None = None) -> dict[str, dict[str, Any]]:
        """``{vm uuid: {"name", "owner", "state", "metrics", "nics"}}`` for this host's VMs
        whose record says starting, running or stopping, and those still followed since an
        earlier tick (running ones with metrics). A VM that is neither (stopped, crashed …) is
        not read at all: its state is its record's (issue 15: 10,000 stopped VMs cost nothing
        per tick; readers that list stopped VMs take them from ``list_vm_summaries``)."""
        self._ticks += 1
        driver = active_driver(self.runtime)
        nics = nics if nics is not None else psutil.net_io_counters(pernic=True)
        here = (local_host_name(self.runtime), "")  # this group host's VMs: each host samples its own (issue 22)
        rows = [row for row in list_vm_summaries(self.runtime, states=ACTIVE_STATES, uuids=list(self.tracked))
                if row.host in here]
        seen: set[str] = set()
        out: dict[str, dict[str, Any]] = {}
        self.stopped = []
        namespaces: dict[int, dict[str, Any]] = {}
        for row in rows:
            seen.add(row.uuid)
            known = self.tracked.get(row.uuid)
            reading = self._read(known) if known is not None else None
            if known is not None and reading is GONE:
                self.tracked.pop(row.uuid)
                try:
                    status = driver.status(self._spec(row), self._vm_dir(row))
                except LookupError:  # destroyed since the tick listed it: nothing to report
                    continue
                self.stopped.append({"uuid": row.uuid, "name": row.name, "owner": row.owner,
                                     "state": str(status.state.value), "detail": status.detail})
                known = None
            if known is None and row.state in ACTIVE_STATES:
                known = self._discover(row, driver)
                if known is not None:
                    self.tracked[row.uuid] = known
                    reading = self._read(known)
            if known is not None and known.netns is not None:
                nics_of = self._namespace_nics(known, namespaces)
            else:
                nics_of = nics
            entry: dict[str, Any] = {"name": row.name, "owner": row.owner, "state": row.state, "metrics": {}}
            if known is not None:
                entry["state"] = "running" if row.state not in ACTIVE_STATES else row.state
                entry["cpus"] = known.cpus
                if isinstance(reading, Reading):  # else ended meanwhile (the next tick reports it) or unreadable
                    self._measure(known, entry, nics_of, reading)
                if self.driver_stats_every and self._ticks % self.driver_stats_every == 1:
                    self._driver_stats(driver, row, known)
                entry["metrics"].update(known.extra)
            out[row.uuid] = entry
        for uuid in set(self.tracked) - seen:  # destroyed since the last tick
            self.tracked.pop(uuid)
        return out

    @staticmethod
    def _namespace_nics(vm: Tracked, cache: dict[int, dict[str, Any]]) -> dict[str, Any]:
        """The interface counters of the VM's namespace, read once per namespace and tick."""
        assert vm.netns is not None
        if vm.netns not in cache:
            try:
                with open(f"/proc/{vm.process.pid}/net/dev") as handle:
                    cache[vm.netns] = parse_net_dev(handle.read())
            except OSError:
                cache[vm.netns] = {}
        return cache[vm.netns]

    def _read(self, vm: Tracked) -> Reading | object | None:
        """One read of the VM's process (psutil's ``oneshot``: on Linux ``/proc/PID/stat``,
        ``statm`` and ``io``); :data:`GONE` once it has ended, ``None`` when it cannot be read.

        An ended process fails the read itself, so no separate liveness check is spent per VM
        and tick (issue 15: psutil's ``is_running`` re-reads the process to compare its start
        time, a third of a tick over 200 VMs); that comparison, which catches a pid reused by
        another process, runs every ``identity_every`` ticks."""
        if self.procfs:
            return self._read_procfs(vm)
        try:
            if self._ticks % self.identity_every == 0 and not vm.process.is_running():
                return GONE
            with vm.process.oneshot():
                times = vm.process.cpu_times()
                memory = vm.process.memory_info()
                started = vm.process.create_time()
                try:
                    io = vm.process.io_counters()
                except (psutil.AccessDenied, AttributeError, NotImplementedError):
                    io = None
        except psutil.NoSuchProcess:
            return GONE
        except psutil.Error:
            return None
        return Reading(times, memory, started, io)

    def _read_procfs(self, vm: Tracked) -> Reading | object | None:
        """:meth:`_read` from procfs (Linux): its start time, in the same read, is compared
        with the one first seen every tick, so a reused pid is caught at once."""
        pid = vm.process.pid
        try:
            times, memory, ticks = procfs.read_stat(pid)
        except FileNotFoundError:
            return GONE
        except (OSError, ValueError, IndexError):
            return None
        if vm.start_ticks is None:
            vm.start_ticks = ticks
        elif ticks != vm.start_ticks:  # the pid belongs to another process now
            return GONE
        return Reading(times, memory, self.boot_time + ticks / procfs.CLOCK_TICKS, procfs.read_io(pid))

    def _measure(self, vm: Tracked, entry: dict[str, Any], nics: dict[str, Any], reading: Reading) -> None:
        now = time.monotonic()
        seconds = now - vm.at if vm.at else 0.0
        times, memory, started, io = reading
        cpu = times.user + times.system
        metrics: dict[str, Any] = {
            "cpu_seconds": round(cpu, 2),
            "mem_rss": memory.rss,
            "mem_percent": round(100.0 * memory.rss / vm.memory_bytes, 2) if vm.memory_bytes else None,
            "uptime": round(time.time() - started),
        }
        if seconds:
            value = rate(cpu, vm.cpu, seconds)
            metrics["cpu_percent"] = round(100.0 * value, 2) if value is not None else None
        # FreeBSD reports the byte fields as -1 (psutil; reference 8.4): only counts then.
        if io is not None and seconds and vm.io is not None:
            if io.read_bytes >= 0:
                metrics["disk_read_bps"] = rate(io.read_bytes, vm.io.read_bytes, seconds)
                metrics["disk_write_bps"] = rate(io.write_bytes, vm.io.write_bytes, seconds)
            metrics["disk_read_iops"] = rate(io.read_count, vm.io.read_count, seconds)
            metrics["disk_write_iops"] = rate(io.write_count, vm.io.write_count, seconds)
        per_nic: dict[str, dict[str, Any]] = {}
        rx_total = tx_total = 0.0
        for index, tap in enumerate(vm.taps):
            counters = nics.get(tap) if tap else None
            if tap is None or counters is None:
                continue
            before = vm.nics.get(tap)
            rx = rate(counters.bytes_sent, before and before.bytes_sent, seconds)
            tx = rate(counters.bytes_recv, before and before.bytes_recv, seconds)
            per_nic[f"net{index}"] = {
                "tap": tap, "rx_bps": rx, "tx_bps": tx,
                "rx_pps": rate(counters.packets_sent, before and before.packets_sent, seconds),
                "tx_pps": rate(counters.packets_recv, before and before.packets_recv, seconds),
            }
            vm.nics[tap] = counters
            if rx is not None and tx is not None:
                metrics[f"net{index}_rx_bps"], metrics[f"net{index}_tx_bps"] = rx, tx
                rx_total += rx
                tx_total += tx
        if seconds and per_nic:
            metrics["net_rx_bps"], metrics["net_tx_bps"] = rx_total, tx_total
        vm.cpu, vm.io, vm.at = cpu, io, now
        entry["metrics"] = {k: v for k, v in metrics.items() if v is not None}
        entry["nics"] = per_nic
        entry["pid"] = vm.process.pid

    def _driver_stats(self, driver: Any, row: Any, vm: Tracked) -> None:
        """The driver's extra counters (bhyve: exits, backed guest RAM) where it has them and
        psutil does not already give the same (QEMU's adds only per-drive QMP counters)."""
        if DriverCapability.LIVE_STATS not in driver.capabilities or driver.name == "qemu":
            return
        try:
            stats = driver.stats(self._spec(row), self._vm_dir(row))
        except Exception as exc:  # the driver's command failed: keep psutil's values
            log.debug("driver stats of %s failed: %s", row.name, exc)
            return
        vm.extra = {k: v for k, v in stats.extra.items() if isinstance(v, int | float)}
        if stats.rss_bytes is not None:
            vm.extra["guest_resident"] = stats.rss_bytes
