"""One reading of this host through psutil (FreeBSD and Linux alike): CPU, load, memory, swap,
disks, network interfaces and uptime, with counters turned into rates against the previous read.

psutil's FreeBSD sources are listed in the reference (freebsd-host.md 8.4): ``kern.cp_time(s)``,
the ``vm.stats.vm`` page counters, devstat (GEOM disks only: ``volmode=dev`` zvols never show),
``getifaddrs`` interface counters (taps and bridges included). ZFS ARC and pools are not in
psutil: :mod:`bhype_monitor.zfs_sample` reads them on FreeBSD.
"""

from __future__ import annotations

import os
import time
from typing import Any

import psutil

# Interfaces that are VM taps: their counters belong to the VMs, not to the host's traffic.
VM_INTERFACE_PREFIXES = ("tap", "vmnet", "bh")


def rate(now: float | int | None, before: float | int | None, seconds: float) -> float | None:
    """Per-second change of a counter; ``None`` without an earlier value, and 0 when the counter
    went backwards (a reset: a reopened tap, a restarted process)."""
    if now is None or before is None or seconds <= 0:
        return None
    return max(0.0, (now - before) / seconds)


class HostReader:
    """Reads the host each tick; keeps the previous counters (in memory) for rates."""

    def __init__(self) -> None:
        self._cpu: Any = None
        self._cores: list[Any] | None = None
        self._disks: dict[str, Any] = {}
        self._nics: dict[str, Any] = {}
        self._at: float | None = None

    @staticmethod
    def _busy(before: Any, after: Any) -> float | None:
        """CPU busy percent between two ``cpu_times`` (everything but idle and iowait)."""
        if before is None:
            return None
        total = sum(after) - sum(before)
        idle = (after.idle - before.idle) + (getattr(after, "iowait", 0) - getattr(before, "iowait", 0))
        return round(100.0 * (total - idle) / total, 2) if total > 0 else 0.0

    def read(self, nics: dict[str, Any] | None = None) -> dict[str, Any]:
        """The host's values now: a flat ``metrics`` dict (what history keeps) plus per-core,
        per-disk and per-interface detail (live only). ``nics`` is a
        ``psutil.net_io_counters(pernic=True)`` read the caller shares with the VM reader."""
        now = time.monotonic()
        seconds = now - self._at if self._at is not None else 0.0
        cpu = psutil.cpu_times()
        cores = psutil.cpu_times(percpu=True)
        core_percent = [self._busy(b, a) for b, a in zip(self._cores, cores, strict=False)] if self._cores else []
        memory = psutil.virtual_memory()
        swap = psutil.swap_memory()
        load = os.getloadavg()
        disks = psutil.disk_io_counters(perdisk=True) or {}
        nics = nics if nics is not None else psutil.net_io_counters(pernic=True)
        metrics: dict[str, float | None] = {
            "cpu_percent": self._busy(self._cpu, cpu),
            "load1": round(load[0], 2), "load5": round(load[1], 2), "load15": round(load[2], 2),
            "mem_total": memory.total, "mem_used": memory.total - memory.available,
            "mem_percent": memory.percent, "swap_total": swap.total, "swap_used": swap.used,
            "uptime": round(time.time() - psutil.boot_time()),
        }
        per_disk = {}
        totals = {"disk_read_bps": 0.0, "disk_write_bps": 0.0, "disk_read_iops": 0.0, "disk_write_iops": 0.0}
        for name, io in disks.items():
            before = self._disks.get(name)
            values = {
                "read_bps": rate(io.read_bytes, before and before.read_bytes, seconds),
                "write_bps": rate(io.write_bytes, before and before.write_bytes, seconds),
                "read_iops": rate(io.read_count, before and before.read_count, seconds),
                "write_iops": rate(io.write_count, before and before.write_count, seconds),
            }
            per_disk[name] = values
            for key, value in values.items():
                totals[f"disk_{key}"] += value or 0.0
        per_nic = {}
        net = {"net_rx_bps": 0.0, "net_tx_bps": 0.0, "net_errors": 0.0}
        for name, io in nics.items():
            if name == "lo" or name.startswith(("lo0",) + VM_INTERFACE_PREFIXES):
                continue
            before = self._nics.get(name)
            values = {
                "rx_bps": rate(io.bytes_recv, before and before.bytes_recv, seconds),
                "tx_bps": rate(io.bytes_sent, before and before.bytes_sent, seconds),
                "errors": rate(io.errin + io.errout, before and before.errin + before.errout, seconds),
                "drops": rate(io.dropin + io.dropout, before and before.dropin + before.dropout, seconds),
            }
            per_nic[name] = values
            net["net_rx_bps"] += values["rx_bps"] or 0.0
            net["net_tx_bps"] += values["tx_bps"] or 0.0
            net["net_errors"] += values["errors"] or 0.0
        first = self._at is None
        if not first:  # rates need two reads: the first tick reports levels only
            metrics.update(totals)
            metrics.update(net)
        self._cpu, self._cores, self._disks, self._at = cpu, cores, dict(disks), now
        self._nics = {name: io for name, io in nics.items()}
        return {
            "metrics": {k: v for k, v in metrics.items() if v is not None},
            "cores": core_percent,
            "disks": per_disk if not first else {},
            "nics": per_nic if not first else {},
            "cpus": psutil.cpu_count() or 1,
        }
