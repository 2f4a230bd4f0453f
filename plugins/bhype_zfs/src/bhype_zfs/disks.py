"""Is this disk blank? Read-only probes of partition tables, file systems, ZFS labels, mounts and swap.

A disk that is mounted, used for swap, part of an imported pool or missing is always refused;
one that merely holds a partition table, a file system signature or the label of a pool that
is not imported is refused unless the caller forces it (``--force``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from bhype_zfs.disk_parse import (
    ZfsLabel,
    linux_partitions,
    parse_gpart_show,
    parse_mount_list,
    parse_proc_partitions,
    parse_swap_list,
    parse_udev_properties,
    parse_zdb_label,
)
from bhype_zfs.pool_argv import disk_probe_commands, geom_name, label_command
from bhype_zfs.tool import ZfsHost

_FREEBSD_PARTITION = re.compile(r"\d(p\d+|s\d+[a-h]?)$")


@dataclass(frozen=True)
class Finding:
    """Why a disk is not blank; ``forceable`` findings may be overridden with ``force``."""

    reason: str
    forceable: bool


@dataclass
class DiskReport:
    """What the probe saw on one disk."""

    device: str
    exists: bool = True
    is_partition: bool = False
    partition_table: str | None = None
    partitions: list[str] = field(default_factory=list)
    filesystem: str | None = None
    labels: dict[str, ZfsLabel] = field(default_factory=dict)
    mounted: list[tuple[str, str]] = field(default_factory=list)
    swap: list[str] = field(default_factory=list)

    def findings(self, imported_pools: set[str]) -> list[Finding]:
        """Everything that makes this disk unsafe to give to a new pool (empty: blank)."""
        if not self.exists:
            return [Finding(f"{self.device} does not exist", False)]
        found = []
        if self.is_partition:
            found.append(Finding(f"{self.device} is a partition; name whole disks", False))
        for device, mountpoint in self.mounted:
            found.append(Finding(f"{device} is mounted on {mountpoint}", False))
        for device in self.swap:
            found.append(Finding(f"{device} is used for swap", False))
        for device, label in sorted(self.labels.items()):
            if label.pool and label.pool in imported_pools:
                found.append(Finding(f"{device} belongs to imported pool {label.pool!r}", False))
            else:
                what = f"pool {label.pool!r}" if label.pool else "a pool (spare or cache device)"
                found.append(Finding(f"{device} holds a ZFS label of {what} (state {label.state})", True))
        if self.partition_table:
            parts = f" (partitions: {', '.join(self.partitions)})" if self.partitions else ""
            found.append(Finding(f"{self.device} holds a {self.partition_table} partition table{parts}", True))
        if self.filesystem and not self.labels:
            found.append(Finding(f"{self.device} holds a {self.filesystem} file system signature", True))
        return found


def probe_disk(host: ZfsHost, device: str) -> DiskReport:
    """Look at ``device`` through the runner without changing anything (see
    :func:`~bhype_zfs.pool_argv.disk_probe_commands` for the commands per platform)."""
    if not host.has_path(device):
        return DiskReport(device, exists=False)
    if host.tools.platform == "freebsd":
        return _probe_freebsd(host, device)
    return _probe_linux(host, device)


def _probe_linux(host: ZfsHost, device: str) -> DiskReport:
    commands = disk_probe_commands(host.tools, device)
    udev = parse_udev_properties(host.probe(commands["udev"]).stdout)
    kernel = udev.get("DEVNAME", device)
    report = DiskReport(device)
    report.is_partition = udev.get("DEVTYPE") == "partition"
    report.partition_table = (udev.get("ID_PART_TABLE_TYPE") or "").upper() or None
    report.filesystem = udev.get("ID_FS_TYPE") or None
    kname = kernel.removeprefix("/dev/")
    names = parse_proc_partitions(host.probe(commands["partitions"]).stdout)
    report.partitions = [f"/dev/{name}" for name in linux_partitions(kname, names)]
    _common(host, commands, report, [device, kernel, *report.partitions])
    return report


def _probe_freebsd(host: ZfsHost, device: str) -> DiskReport:
    commands = disk_probe_commands(host.tools, device)
    report = DiskReport(device)
    gpart = host.probe(commands["partitions"])
    table = parse_gpart_show(gpart.stdout) if gpart.returncode == 0 else None
    if table is not None:
        report.partition_table = table.scheme
        report.partitions = [f"/dev/{provider}" for provider, _ in table.partitions]
    fstyp = host.probe(commands["filesystem"])
    if fstyp.returncode == 0 and fstyp.stdout.strip():
        report.filesystem = fstyp.stdout.strip()
    # ada1p1 (GPT), ada1s1 / ada1s1a (MBR slice, BSD label): a partition, not a disk.
    report.is_partition = bool(_FREEBSD_PARTITION.search(geom_name(device)))
    _common(host, commands, report, [device, *report.partitions])
    return report


def _common(host: ZfsHost, commands: dict[str, list[str]], report: DiskReport, devices: list[str]) -> None:
    """ZFS labels of the disk and its partitions; mounts and swap naming any of them."""
    for device in [report.device, *report.partitions]:
        label = parse_zdb_label(host.probe(label_command(device)).stdout)
        if label is not None:
            report.labels[device] = label
    names = set(devices)
    mounts = parse_mount_list(host.probe(commands["mounts"]).stdout)
    report.mounted = [(dev, mnt) for dev, mnt in mounts if dev in names]
    report.swap = [dev for dev in parse_swap_list(host.probe(commands["swaps"]).stdout) if dev in names]


def imported_pools(host: ZfsHost) -> set[str]:
    """Names of the pools imported on the host (``zpool list -H -o name``, zpool-list(8))."""
    result = host.probe([host.tools.zpool, "list", "-H", "-o", "name"])
    return set(result.stdout.split()) if result.returncode == 0 else set()


def check_disks(host: ZfsHost, devices: list[str], force: bool = False) -> dict[str, list[Finding]]:
    """Probe every disk; returns the findings that block each one (``force`` drops the
    forceable ones). An empty dict means every disk may be used."""
    pools = imported_pools(host)
    blocking = {}
    for device in devices:
        findings = probe_disk(host, device).findings(pools)
        kept = [f for f in findings if not (force and f.forceable)]
        if kept:
            blocking[device] = kept
    return blocking
