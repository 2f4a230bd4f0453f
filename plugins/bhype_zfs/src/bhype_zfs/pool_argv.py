"""Pure argv builders for pools (zpool(8)) and for looking at disks before a pool takes them.

FreeBSD and Linux differ in how a whole disk becomes a vdev (reference 6.2): on FreeBSD bHype
writes a GPT with one labelled ``freebsd-zfs`` partition (gpart(8)) and builds the pool from
``gpt/<label>``; on Linux ``zpool create`` labels a whole disk itself (partition 1 for data,
partition 9 reserved) and needs the stable ``/dev/disk/by-id`` name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from bhype_core.plugin_api import ValidationErrors
from bhype_zfs.argv import Tools, _csv, _props
from bhype_zfs.settings import check_pool_name

# zpoolconcepts(7): a raidz group needs at least one more device than its parity.
LAYOUTS: dict[str, int] = {"single": 1, "mirror": 2, "raidz1": 2, "raidz2": 3, "raidz3": 4}
POOL_PROPERTIES = ("name", "size", "alloc", "free", "frag", "cap", "dedup", "health")
GPT_LABEL_MAX = 36  # gpart(8): GPT partition labels hold 36 UTF-16 characters
DEFAULT_FS_PROPERTIES = {"compression": "lz4", "atime": "off"}


@dataclass(frozen=True)
class PoolDisk:
    """One disk given to ``zpool create``: the device the user named and the vdev name the
    pool is built from (the same on Linux; ``gpt/<label>`` on FreeBSD)."""

    device: str
    vdev: str
    label: str | None = None


def geom_name(device: str) -> str:
    """FreeBSD's provider name for a device path (``/dev/ada1`` → ``ada1``), as gpart(8) wants."""
    return device.removeprefix("/dev/")


def pool_disks(tools: Tools, pool: str, devices: Sequence[str]) -> list[PoolDisk]:
    """The vdev name of each disk: on FreeBSD the GPT label ``<pool>-<n>`` bHype will write
    (gpart(8)), on Linux the device itself (zpool-create(8) partitions whole disks).

    :raises ValidationErrors: a repeated device, or a label longer than GPT allows (``pool``).
    """
    errors = ValidationErrors()
    seen: set[str] = set()
    for index, device in enumerate(devices):
        if not device or not device.startswith("/dev/") or any(c.isspace() for c in device):
            errors.add(f"disks.{index}", f"{device!r} must be a device path under /dev/")
        if device in seen:
            errors.add(f"disks.{index}", f"{device} is named twice")
        seen.add(device)
    errors.raise_if_any()
    if tools.platform == "linux":
        return [PoolDisk(device, device) for device in devices]
    disks = []
    for index, device in enumerate(devices):
        label = f"{pool}-{index}"
        if len(label) > GPT_LABEL_MAX:
            raise ValidationErrors([("pool", f"{pool!r} is too long for GPT labels ({label!r} > {GPT_LABEL_MAX})")])
        disks.append(PoolDisk(device, f"gpt/{label}", label))
    return disks


def partition_disk(tools: Tools, disk: PoolDisk) -> list[list[str]]:
    """Commands preparing one disk for the pool: FreeBSD ``gpart create -s gpt`` then
    ``gpart add -t freebsd-zfs -a 1m -l <label>`` (gpart(8), reference 6.2); none on Linux."""
    if tools.platform == "linux" or disk.label is None:
        return []
    geom = geom_name(disk.device)
    return [
        ["gpart", "create", "-s", "gpt", geom],
        ["gpart", "add", "-t", "freebsd-zfs", "-a", "1m", "-l", disk.label, geom],
    ]


def create_pool(
    tools: Tools,
    pool: str,
    layout: str,
    vdevs: Sequence[str],
    *,
    ashift: int | None = 12,
    mountpoint: str | None = None,
    fs_properties: Mapping[str, str] | None = None,
    force: bool = False,
) -> list[str]:
    """``zpool create [-f] [-o ashift=N] [-O prop=value]... [-m mountpoint] pool [type] vdev...``
    (zpool-create(8)); ``layout`` is ``single``, ``mirror``, ``raidz1``, ``raidz2`` or ``raidz3``.

    :raises ValidationErrors: unknown layout, too few or too many disks (``disks``), bad ashift.
    """
    errors = ValidationErrors()
    try:
        check_pool_name(pool)
    except ValueError as exc:
        errors.add("pool", str(exc))
    if not pool:
        errors.add("pool", "must not be empty")
    if layout not in LAYOUTS:
        errors.add("layout", f"must be one of {', '.join(LAYOUTS)}, not {layout!r}")
    elif layout == "single" and len(vdevs) != 1:
        errors.add("disks", f"layout single takes exactly one disk, not {len(vdevs)}")
    elif len(vdevs) < LAYOUTS[layout]:
        errors.add("disks", f"layout {layout} needs at least {LAYOUTS[layout]} disks, not {len(vdevs)}")
    if ashift is not None and not (9 <= ashift <= 16):
        errors.add("ashift", f"must be from 9 to 16 (zpoolprops(7)), not {ashift}")
    if mountpoint is not None and not mountpoint.startswith("/") and mountpoint not in ("none", "legacy"):
        errors.add("mountpoint", f"must be an absolute path, 'none' or 'legacy', not {mountpoint!r}")
    errors.raise_if_any()
    argv = [tools.zpool, "create"]
    if force:
        argv.append("-f")
    if ashift is not None:
        argv += ["-o", f"ashift={ashift}"]
    argv += _props("-O", DEFAULT_FS_PROPERTIES if fs_properties is None else fs_properties)
    if mountpoint is not None:
        argv += ["-m", mountpoint]
    argv.append(pool)
    if layout != "single":
        argv.append(layout)
    return argv + list(vdevs)


def list_pools(tools: Tools, pools: Sequence[str] = (), properties: Sequence[str] = POOL_PROPERTIES) -> list[str]:
    """``zpool list -Hp -o props [pool...]`` (zpool-list(8)); see :func:`~bhype_zfs.parse.parse_zpool_list`."""
    return [tools.zpool, "list", "-Hp", "-o", _csv(properties, "properties"), *(check_pool(p) for p in pools)]


def pool_status(tools: Tools, pool: str) -> list[str]:
    """``zpool status -P -p pool`` (zpool-status(8)): full vdev paths, exact error counters.
    (zpool status has no ``-H``; :func:`~bhype_zfs.parse.parse_zpool_status` reads the
    ``state:`` line and the indented vdev table.)"""
    return [tools.zpool, "status", "-P", "-p", check_pool(pool)]


def export_pool(tools: Tools, pool: str) -> list[str]:
    """``zpool export pool`` (zpool-export(8))."""
    return [tools.zpool, "export", check_pool(pool)]


def import_scan(tools: Tools, search: Sequence[str] = ()) -> list[str]:
    """``zpool import [-d dir]...`` (zpool-import(8)): lists importable pools, imports nothing."""
    return [tools.zpool, "import", *(w for d in search for w in ("-d", d))]


def import_pool(tools: Tools, pool: str, search: Sequence[str] = (), *, new_name: str | None = None) -> list[str]:
    """``zpool import [-d dir]... pool [newpool]`` (zpool-import(8))."""
    argv = [tools.zpool, "import", *(w for d in search for w in ("-d", d)), check_pool(pool)]
    return argv + ([check_pool(new_name)] if new_name else [])


def check_pool(pool: str, field: str = "pool") -> str:
    """``pool`` when it is a pool name zpool-create(8) accepts, else ValidationErrors naming ``field``."""
    try:
        if not pool:
            raise ValueError("must not be empty")
        return check_pool_name(pool)
    except ValueError as exc:
        raise ValidationErrors([(field, str(exc))]) from None


# ------------------------------------------------------------------------------------------
# Looking at a disk before a pool takes it (read-only). zdb(8) -l prints the ZFS labels of a
# device and exits 0 when it found one, 2 when none unpacked: never 255, which ssh reserves
# (unlike `zpool labelclear`).


def disk_probe_commands(tools: Tools, device: str) -> dict[str, list[str]]:
    """Read-only commands describing ``device``, by purpose.

    FreeBSD: ``gpart show -p`` (partition table; exit 1 "No such geom" without one, gpart(8)),
    ``fstyp`` (a file system directly on the disk, fstyp(8)), ``mount -p`` (mount(8)),
    ``swapctl -l`` (swapctl(8)). Linux: ``udevadm info --query=property`` (udev's blkid probe:
    ``ID_PART_TABLE_TYPE``, ``ID_FS_TYPE``, udevadm(8)), ``/proc/partitions``,
    ``/proc/mounts``, ``/proc/swaps`` (proc(5)). Both: ``zdb -l`` for a pool label.
    """
    if tools.platform == "freebsd":
        return {
            "partitions": ["gpart", "show", "-p", geom_name(device)],
            "filesystem": ["fstyp", device],
            "mounts": ["mount", "-p"],
            "swaps": ["swapctl", "-l"],
            "label": ["zdb", "-l", device],
        }
    return {
        "udev": ["udevadm", "info", "--query=property", f"--name={device}"],
        "partitions": ["cat", "/proc/partitions"],
        "mounts": ["cat", "/proc/mounts"],
        "swaps": ["cat", "/proc/swaps"],
        "label": ["zdb", "-l", device],
    }


def label_command(device: str) -> list[str]:
    """``zdb -l device`` (zdb(8)): the ZFS labels on one device or partition."""
    return ["zdb", "-l", device]
