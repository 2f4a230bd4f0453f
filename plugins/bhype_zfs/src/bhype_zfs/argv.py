"""Pure argv builders for zfs(8) dataset, volume, snapshot, hold, clone and send/receive commands.

Every option comes before the first operand: FreeBSD's getopt does not reorder arguments
(reference 6.1), so ``zfs get prop -r ds`` would read ``-r`` as a dataset. Where FreeBSD and
Linux differ, :class:`Tools` carries the platform (reference 6.3; zfsprops(7) ``volmode``).
Pool-level commands live in :mod:`bhype_zfs.pool_argv`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from bhype_core.plugin_api import ValidationErrors
from bhype_zfs.names import (
    check_dataset,
    check_full_snapshot,
    check_tag,
    check_user_property,
    check_user_value,
)

PLATFORMS = ("freebsd", "linux")
DATASET_TYPES = ("filesystem", "volume", "snapshot", "bookmark", "all")
# zfsprops(7) volblocksize: a power of two from 512 bytes to 128 KiB (16 MiB with large_blocks).
MIN_VOLBLOCKSIZE = 512
MAX_VOLBLOCKSIZE = 16 * 1024 * 1024


@dataclass(frozen=True)
class Tools:
    """Which ``zfs``/``zpool`` executables to call and on which platform they run."""

    zfs: str = "zfs"
    zpool: str = "zpool"
    platform: str = "freebsd"

    def __post_init__(self) -> None:
        if self.platform not in PLATFORMS:
            raise ValidationErrors([("platform", f"must be one of {', '.join(PLATFORMS)}, not {self.platform!r}")])


def _props(flag: str, properties: Mapping[str, str] | None) -> list[str]:
    """``-o a=b -o c=d`` (or ``-O``): one flag per property, in the mapping's order."""
    words: list[str] = []
    for name, value in (properties or {}).items():
        if not name or "=" in name or name.startswith("-"):
            raise ValidationErrors([(f"properties.{name}", "is not a property name")])
        words += [flag, f"{name}={value}"]
    return words


def _csv(values: Iterable[str], field: str) -> str:
    items = list(values)
    if not items or any(not item or "," in item for item in items):
        raise ValidationErrors([(field, f"must be a non-empty list of names without ',' ({items!r})")])
    return ",".join(items)


def zvol_device(tools: Tools, volume: str) -> str:
    """The device node a hypervisor opens for a zvol: ``/dev/zvol/<pool>/<path>`` on both
    platforms (FreeBSD: a character device with ``volmode=dev``; Linux: udev's symlink to
    ``/dev/zdN``, created asynchronously: see :func:`settle_devices`)."""
    return f"/dev/zvol/{check_dataset(volume, 'volume')}"


def settle_devices(tools: Tools) -> list[list[str]]:
    """Commands that wait until new zvol device links exist: Linux ``udevadm settle``
    (udev creates ``/dev/zvol/...``); nothing on FreeBSD, where devfs makes the node itself."""
    return [["udevadm", "settle", "--timeout=30"]] if tools.platform == "linux" else []


# ------------------------------------------------------------------------------------------
# zfs-create(8), zfs-set(8), zfs-get(8), zfs-inherit(8), zfs-list(8), zfs-destroy(8)


def create_filesystem(
    tools: Tools, dataset: str, properties: Mapping[str, str] | None = None, parents: bool = False
) -> list[str]:
    """``zfs create [-p] [-o prop=value]... dataset`` (zfs-create(8))."""
    check_dataset(dataset)
    return [tools.zfs, "create", *(["-p"] if parents else []), *_props("-o", properties), dataset]


def create_volume(
    tools: Tools,
    volume: str,
    size: int,
    *,
    sparse: bool = True,
    volblocksize: int | None = None,
    properties: Mapping[str, str] | None = None,
) -> list[str]:
    """``zfs create [-s] -V size -o volmode=dev [-o volblocksize=N] ... volume`` (zfs-create(8)).

    ``volmode=dev`` on both platforms (zfsprops(7)): on FreeBSD the zvol is then a plain
    character device the host never tastes for guest partitions or pools (not a GEOM
    provider); on Linux no partition nodes are made for it. ``-s`` skips the refreservation
    (space is used as the guest writes). ``size`` must be a multiple of the block size.

    :raises ValidationErrors: a bad size or block size (fields ``size``, ``volblocksize``).
    """
    check_dataset(volume, "volume")
    errors = ValidationErrors()
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        errors.add("size", f"must be a positive number of bytes, not {size!r}")
    if volblocksize is not None:
        if not isinstance(volblocksize, int) or volblocksize < MIN_VOLBLOCKSIZE or volblocksize > MAX_VOLBLOCKSIZE \
                or volblocksize & (volblocksize - 1):
            errors.add("volblocksize", f"must be a power of two from 512 to 16M bytes, not {volblocksize!r}")
        elif isinstance(size, int) and size > 0 and size % volblocksize:
            errors.add("size", f"{size} is not a multiple of volblocksize {volblocksize} (zfsprops(7))")
    errors.raise_if_any()
    props = {"volmode": "dev", **({"volblocksize": str(volblocksize)} if volblocksize else {}), **(properties or {})}
    return [tools.zfs, "create", *(["-s"] if sparse else []), "-V", str(size), *_props("-o", props), volume]


def set_properties(tools: Tools, dataset: str, properties: Mapping[str, str]) -> list[str]:
    """``zfs set prop=value... dataset`` (zfs-set(8)); user property values are checked."""
    check_dataset(dataset.split("@")[0])
    if not properties:
        raise ValidationErrors([("properties", "nothing to set")])
    for name, value in properties.items():
        if ":" in name:
            check_user_property(name, f"properties.{name}")
            check_user_value(value, f"properties.{name}")
    return [tools.zfs, "set", *(f"{name}={value}" for name, value in properties.items()), dataset]


def get_properties(
    tools: Tools,
    properties: Sequence[str],
    datasets: Sequence[str] = (),
    *,
    recursive: bool = False,
    depth: int | None = None,
    sources: Sequence[str] = (),
    types: Sequence[str] = (),
) -> list[str]:
    """``zfs get -Hp -o name,property,value,source [-r|-d N] [-s ...] [-t ...] props [ds...]``
    (zfs-get(8)): one TAB-separated row per dataset and property (see :func:`~bhype_zfs.parse.parse_zfs_get`)."""
    argv = [tools.zfs, "get", "-Hp", "-o", "name,property,value,source"]
    if depth is not None:
        argv += ["-d", str(int(depth))]
    elif recursive:
        argv.append("-r")
    if sources:
        argv += ["-s", _csv(sources, "sources")]
    if types:
        argv += ["-t", _csv(types, "types")]
    argv.append(_csv(properties, "properties"))
    for dataset in datasets:
        check_dataset(dataset.split("@")[0])
    return argv + list(datasets)


def inherit(tools: Tools, prop: str, dataset: str) -> list[str]:
    """``zfs inherit prop dataset`` (zfs-inherit(8)): removes a local user property."""
    return [tools.zfs, "inherit", check_user_property(prop), check_dataset(dataset)]


def list_datasets(
    tools: Tools,
    properties: Sequence[str],
    datasets: Sequence[str] = (),
    *,
    types: Sequence[str] = ("filesystem", "volume"),
    recursive: bool = False,
    depth: int | None = None,
    sort: str | None = None,
) -> list[str]:
    """``zfs list -Hp -o props [-t types] [-r|-d N] [-s prop] [ds...]`` (zfs-list(8)): exact
    numbers, no header, TAB-separated, ``-`` for absent values."""
    for kind in types:
        if kind not in DATASET_TYPES:
            raise ValidationErrors([("types", f"{kind!r} is not one of {', '.join(DATASET_TYPES)}")])
    argv = [tools.zfs, "list", "-Hp", "-o", _csv(properties, "properties"), "-t", _csv(types, "types")]
    if depth is not None:
        argv += ["-d", str(int(depth))]
    elif recursive:
        argv.append("-r")
    if sort:
        argv += ["-s", sort]
    for dataset in datasets:  # filesystems, volumes or named snapshots (ds@snap)
        check_full_snapshot(dataset) if "@" in dataset else check_dataset(dataset)
    return argv + list(datasets)


def destroy(tools: Tools, dataset: str, *, recursive: bool = False, dry_run: bool = False) -> list[str]:
    """``zfs destroy [-r] [-nvp] dataset`` (zfs-destroy(8)). Never ``-R``: bHype refuses to
    destroy dependent clones implicitly. ``-r`` takes children and snapshots with it."""
    flags = (["-r"] if recursive else []) + (["-n", "-v", "-p"] if dry_run else [])
    return [tools.zfs, "destroy", *flags, check_dataset(dataset)]


def destroy_snapshots(tools: Tools, dataset: str, names: Sequence[str], *, recursive: bool = False) -> list[str]:
    """``zfs destroy [-r] dataset@a,b,c`` (zfs-destroy(8)): several snapshots of one dataset in
    one command; ``-r`` also destroys the same-named snapshots of every descendant."""
    check_dataset(dataset)
    if not names:
        raise ValidationErrors([("snapshots", "nothing to destroy")])
    for name in names:
        check_full_snapshot(f"{dataset}@{name}")
    return [tools.zfs, "destroy", *(["-r"] if recursive else []), f"{dataset}@{','.join(names)}"]


def rename(tools: Tools, old: str, new: str) -> list[str]:
    """``zfs rename old new`` (zfs-rename(8))."""
    return [tools.zfs, "rename", check_dataset(old), check_dataset(new)]


# ------------------------------------------------------------------------------------------
# zfs-snapshot(8), zfs-rollback(8), zfs-hold(8), zfs-clone(8), zfs-promote(8)


def snapshot(
    tools: Tools, snapshots: Sequence[str], *, recursive: bool = False, properties: Mapping[str, str] | None = None
) -> list[str]:
    """``zfs snapshot [-r] [-o prop=value]... ds@a [ds@b ...]`` (zfs-snapshot(8)).

    All snapshots named (and with ``-r`` every descendant's) are taken in one transaction:
    a VM's disks are captured at the same instant. They must be of different datasets ("multiple
    snapshots of same fs not allowed").
    """
    if not snapshots:
        raise ValidationErrors([("snapshot", "nothing to snapshot")])
    for name in snapshots:
        check_full_snapshot(name)
    for name, value in (properties or {}).items():
        check_user_property(name, f"properties.{name}")
        check_user_value(value, f"properties.{name}")
    return [tools.zfs, "snapshot", *(["-r"] if recursive else []), *_props("-o", properties), *snapshots]


def rollback(tools: Tools, snapshot_name: str, *, destroy_newer: bool = False) -> list[str]:
    """``zfs rollback [-r] ds@snap`` (zfs-rollback(8)). ``-r`` (destroy newer snapshots) only
    when the caller explicitly asked; never ``-R`` (would destroy clones of them too)."""
    check_full_snapshot(snapshot_name)
    return [tools.zfs, "rollback", *(["-r"] if destroy_newer else []), snapshot_name]


def hold(tools: Tools, tag: str, snapshots: Sequence[str], *, recursive: bool = False) -> list[str]:
    """``zfs hold [-r] tag ds@snap...`` (zfs-hold(8)): a held snapshot cannot be destroyed."""
    for name in snapshots:
        check_full_snapshot(name)
    return [tools.zfs, "hold", *(["-r"] if recursive else []), check_tag(tag), *snapshots]


def release(tools: Tools, tag: str, snapshots: Sequence[str], *, recursive: bool = False) -> list[str]:
    """``zfs release [-r] tag ds@snap...`` (zfs-release(8))."""
    for name in snapshots:
        check_full_snapshot(name)
    return [tools.zfs, "release", *(["-r"] if recursive else []), check_tag(tag), *snapshots]


def holds(tools: Tools, snapshots: Sequence[str], *, recursive: bool = False) -> list[str]:
    """``zfs holds -Hp [-r] ds@snap...`` (zfs-holds(8)): ``name<TAB>tag<TAB>epoch`` per hold."""
    for name in snapshots:
        check_full_snapshot(name)
    return [tools.zfs, "holds", "-Hp", *(["-r"] if recursive else []), *snapshots]


def clone(tools: Tools, snapshot_name: str, target: str, properties: Mapping[str, str] | None = None) -> list[str]:
    """``zfs clone [-o prop=value]... ds@snap target`` (zfs-clone(8)): O(1), shares blocks
    with the snapshot, which cannot be destroyed while the clone exists."""
    check_full_snapshot(snapshot_name)
    return [tools.zfs, "clone", *_props("-o", properties), snapshot_name, check_dataset(target, "target")]


def promote(tools: Tools, clone_dataset: str) -> list[str]:
    """``zfs promote clone`` (zfs-promote(8)): the clone becomes the origin's parent."""
    return [tools.zfs, "promote", check_dataset(clone_dataset)]


# ------------------------------------------------------------------------------------------
# zfs-send(8), zfs-receive(8)


def send(
    tools: Tools,
    snapshot_name: str,
    *,
    replicate: bool = False,
    incremental_from: str | None = None,
    include_intermediate: bool = False,
    properties: bool = False,
    compressed: bool = True,
    estimate: bool = False,
    verbose: bool = False,
) -> list[str]:
    """``zfs send [-R] [-p] [-c] [-i|-I from] [-n] [-v -P] ds@snap`` (zfs-send(8)).

    ``replicate`` (``-R``) sends descendants, properties (user properties included) and
    snapshots; ``compressed`` (``-c``) keeps blocks as stored; ``estimate`` prints the
    parsable size (``size<TAB>bytes``) and sends nothing; ``verbose`` (``-v -P``) reports the
    bytes sent every second on stderr while the stream goes out.
    """
    check_full_snapshot(snapshot_name)
    argv = [tools.zfs, "send"]
    if replicate:
        argv.append("-R")
    elif properties:
        argv.append("-p")
    if compressed:
        argv.append("-c")
    if incremental_from is not None:
        base = incremental_from if incremental_from.startswith("@") else "@" + incremental_from.split("@")[-1]
        argv += ["-I" if include_intermediate else "-i", base]
    if estimate:
        argv += ["-n", "-v", "-P"]
    elif verbose:
        argv += ["-v", "-P"]
    return argv + [snapshot_name]


def receive(
    tools: Tools,
    target: str,
    *,
    force: bool = False,
    unmounted: bool = True,
    properties: Mapping[str, str] | None = None,
    exclude: Sequence[str] = (),
) -> list[str]:
    """``zfs receive [-F] [-u] [-o prop=value]... [-x prop]... target`` (zfs-receive(8))."""
    argv = [tools.zfs, "receive"]
    if force:
        argv.append("-F")
    if unmounted:
        argv.append("-u")
    argv += _props("-o", properties)
    for prop in exclude:
        argv += ["-x", prop]
    return argv + [check_dataset(target, "target")]


# ------------------------------------------------------------------------------------------
# Disk image files inside a dataset (the "file" disk type)


def create_file(tools: Tools, path: str, size: int) -> list[str]:
    """``truncate -s SIZE path``: a sparse file (truncate(1) on FreeBSD, coreutils/busybox on Linux)."""
    return ["truncate", "-s", str(int(size)), path]


def file_size(tools: Tools, path: str) -> list[str]:
    """The size of ``path`` in bytes on stdout: ``stat -f %z`` on FreeBSD (stat(1)), ``stat -c %s``
    on Linux (GNU and busybox)."""
    if tools.platform == "freebsd":
        return ["stat", "-f", "%z", path]
    return ["stat", "-c", "%s", path]
