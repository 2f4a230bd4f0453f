"""The ZFS datastore's capabilities (issue 12): consistent points (a recursive snapshot of the
VM's dataset, held), export as a ``zfs send`` stream or as the snapshot's files, and space.

zfs-snapshot(8): ``-r`` snapshots the VM dataset and every zvol below it in one transaction, so
all disks are captured at the same instant. zfs-hold(8): a held snapshot cannot be destroyed
(not by retention, not by a user) until every tag is released. zfs-send(8) streams one
snapshot; zfs-list(8) ``-Hp`` gives exact ``used``/``avail``; a snapshot's files are visible
read-only under ``<mountpoint>/.zfs/snapshot/<name>`` (zfsconcepts(7), "Snapshots").
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Collection
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bhype_core.plugin_api import (
    ConsistentPoint,
    ExportFiles,
    ExportStream,
    NotFound,
    SpaceStats,
    StorageCapability,
    ValidationErrors,
    VolumeStats,
)
from bhype_zfs import argv
from bhype_zfs.names import check_tag
from bhype_zfs.parse import parse_holds, parse_rows, parse_zfs_get, to_int

POINT_PREFIX = "bhype-point-"


def zfs_capabilities(disk_type: str) -> frozenset[StorageCapability]:
    """Snapshot, send stream and stats always; a file list only with ``disk_type = "file"`` (a
    zvol is a device, not a file rsync can read); adopting an existing zvol only with zvols."""
    found = {StorageCapability.SNAPSHOT, StorageCapability.EXPORT_STREAM, StorageCapability.STATS}
    if disk_type == "file":
        found.add(StorageCapability.EXPORT_FILES)
    else:
        found.add(StorageCapability.ADOPT)  # zfs rename of an existing zvol (storage_adopt.py)
    return frozenset(found)


class ZfsCapabilities:
    """Mixed into :class:`~bhype_zfs.storage.ZfsStorage` (which supplies ``host``, ``options``,
    ``dataset``, ``vm_dataset``, ``volume_dataset``, ``vm_dir``, ``mountpoint``, ``volume``)."""

    host: Any
    options: Any
    dataset: str
    name: str

    if TYPE_CHECKING:  # supplied by ZfsStorage / StorageBackend

        def vm_dataset(self, vm_name: str) -> str: ...
        def volume_dataset(self, vm_name: str, volume: str) -> str: ...
        def vm_dir(self, vm_name: str) -> Path: ...
        def volume(self, vm_name: str, volume: str) -> Any: ...
        def require(self, capability: StorageCapability, path: str = "datastore") -> None: ...

    def snapshot(
        self, vm_name: str, volumes: Collection[str], tag: str, name: str | None = None
    ) -> ConsistentPoint:
        """``zfs snapshot -r <vm>@<name>`` then ``zfs hold -r <tag>``; a failed hold destroys
        the snapshot again (no unprotected point is left)."""
        check_tag(tag)
        dataset = self.vm_dataset(vm_name)
        name = name or f"{POINT_PREFIX}{time.strftime('%Y%m%d%H%M%S', time.gmtime())}-{secrets.token_hex(3)}"
        snapshot = f"{dataset}@{name}"
        self.host.run(argv.snapshot(self.host.tools, [snapshot], recursive=True))
        try:
            self.host.run(argv.hold(self.host.tools, tag, [snapshot], recursive=True))
        except BaseException:
            self.host.run(argv.destroy_snapshots(self.host.tools, dataset, [name], recursive=True))
            raise
        if self.options.disk_type == "file":
            locations = {volume: snapshot for volume in volumes}
        else:
            locations = {volume: f"{self.volume_dataset(vm_name, volume)}@{name}" for volume in volumes}
        return ConsistentPoint(backend=self.name, vm_name=vm_name, name=name, tag=tag, locations=locations)

    def release(self, point: ConsistentPoint) -> None:
        """``zfs release -r <tag>``, then destroy the point unless another tag still holds it."""
        snapshot = f"{self.vm_dataset(point.vm_name)}@{point.name}"
        self.host.run(argv.release(self.host.tools, point.tag, [snapshot], recursive=True))
        remaining = parse_holds(self.host.text(argv.holds(self.host.tools, [snapshot], recursive=True)))
        if not remaining:
            self.host.run(argv.destroy_snapshots(self.host.tools, self.vm_dataset(point.vm_name), [point.name],
                                                 recursive=True))

    def export_stream(self, point: ConsistentPoint, volume: str | None = None) -> ExportStream:
        """``zfs send -c`` of the point's snapshot of disk ``volume`` (a zvol), or of the VM
        dataset (``None``, or any disk of a ``file`` datastore: the image is in it)."""
        if volume is None or self.options.disk_type == "file":
            snapshot = f"{self.vm_dataset(point.vm_name)}@{point.name}"
        else:
            snapshot = f"{self.volume_dataset(point.vm_name, volume)}@{point.name}"
        return ExportStream(producer=argv.send(self.host.tools, snapshot), format="zfs-send",
                            restore_hint="zfs receive -u <dataset>")

    def export_files(self, vm_name: str, point: ConsistentPoint | None = None) -> ExportFiles:
        """The regular files of the VM dataset (``find -type f``, POSIX: the same on FreeBSD and
        Linux), of the point's read-only ``.zfs/snapshot/<name>`` when ``point`` is given.

        :raises NotSupported: zvol datastores (``disk_type = "zvol"``).
        """
        self.require(StorageCapability.EXPORT_FILES)
        root = self.vm_dir(vm_name)
        if point is not None:
            if point.vm_name != vm_name:
                raise ValidationErrors([("point", f"point {point.name} is of VM {point.vm_name}, not {vm_name}")])
            root = root / ".zfs" / "snapshot" / point.name
        listing = self.host.probe(["find", str(root), "-type", "f"])
        if listing.returncode != 0:
            raise NotFound(f"{root} does not exist on {self.host.runner.target}: {listing.stderr.strip()}")
        prefix = str(root) + "/"
        files = sorted(line[len(prefix):] for line in listing.stdout.splitlines() if line.startswith(prefix))
        return ExportFiles(root=root, files=files, consistent=point is not None)

    def space(self) -> SpaceStats:
        """``zfs list -Hp -o used,avail <root dataset>``: bytes used below it and still free."""
        text = self.host.text(argv.list_datasets(self.host.tools, ["used", "avail"], [self.dataset]))
        [row] = parse_rows(text, ("used", "avail"), "zfs list")
        used, free = to_int(row["used"]) or 0, to_int(row["avail"]) or 0
        return SpaceStats(size=used + free, used=used, free=free)

    def volume_stats(self, vm_name: str, volume: str) -> VolumeStats:
        """A zvol's ``volsize`` and ``referenced`` (data it holds now, snapshots not counted), or
        an image file's length and ``du -k`` (POSIX: allocated KiB)."""
        if self.options.disk_type == "file":
            current = self.volume(vm_name, volume)
            used_kib = self.host.text(["du", "-k", "--", str(current.path)]).split()[0]
            return VolumeStats(name=volume, size=current.size, used=int(used_kib) * 1024)
        dataset = self.volume_dataset(vm_name, volume)
        try:
            text = self.host.text(argv.get_properties(self.host.tools, ["volsize", "referenced"], [dataset]))
        except NotFound:
            raise NotFound(f"disk {volume} of VM {vm_name} does not exist ({dataset})") from None
        values = parse_zfs_get(text).get(dataset, {})
        size = to_int(values["volsize"].value) if "volsize" in values else None
        used = to_int(values["referenced"].value) if "referenced" in values else None
        return VolumeStats(name=volume, size=size or 0, used=used or 0)
