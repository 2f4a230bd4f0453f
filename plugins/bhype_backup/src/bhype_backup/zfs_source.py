"""The source side of a ZFS backup: a VM's datasets on its ZFS datastore, read from a snapshot.

Every command runs on the datastore's host (``runtime.runner``). A zvol snapshot is read as a
block device: ``snapdev=visible`` (zfsprops(7)) makes ``/dev/zvol/<zvol>@<snap>`` appear, read
only, for as long as the property is set; bHype sets it for the read and puts the previous
value back. A filesystem snapshot's files are under ``<mountpoint>/.zfs/snapshot/<snap>``
(zfsconcepts(7), "Snapshots"). ``sha256sum`` is GNU coreutils on Linux and md5(1)'s
``sha256sum`` mode on FreeBSD 13+ (both print ``HASH  NAME``).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from bhype_backup import zfs_argv
from bhype_backup.manifest import FileEntry
from bhype_core.plugin_api import BhypeError

DEVICE_WAIT = 60.0


@dataclass(frozen=True)
class SourceDataset:
    """One dataset of the VM: ``relative`` to the VM's dataset (``""`` itself, ``disk0`` a zvol)."""

    name: str
    relative: str
    kind: str  # "filesystem" or "volume"


def tree(runner: Any, dataset: str) -> list[SourceDataset]:
    """The VM's dataset and its children, parents first."""
    rows = zfs_argv.parse_tree(runner.run(zfs_argv.list_tree(dataset), timeout=120).stdout)
    return [SourceDataset(name, name[len(dataset):].lstrip("/"), kind) for name, kind in rows]


def snapshots(runner: Any, dataset: str) -> list[tuple[str, str]]:
    """``(name, guid)`` of ``dataset``'s own snapshots, oldest first."""
    return zfs_argv.parse_snapshots(runner.run(zfs_argv.list_snapshots(dataset), timeout=120).stdout)


def sha256(runner: Any, path: str) -> str:
    """``sha256sum PATH`` on the datastore's host."""
    text = runner.run(["sha256sum", "--", path], timeout=24 * 3600).stdout.split()
    if not text or len(text[0]) != 64:
        raise BhypeError(f"sha256sum {path} printed {' '.join(text)[:80]!r}")
    return text[0]


def wait_for(runner: Any, path: str, timeout: float = DEVICE_WAIT) -> None:
    """Until ``path`` exists (udev on Linux creates zvol nodes a moment after zfs asks)."""
    deadline = time.monotonic() + timeout
    while runner.run(["test", "-e", path], check=False, timeout=30).returncode != 0:
        if time.monotonic() > deadline:
            raise BhypeError(f"{path} did not appear within {timeout:.0f}s")
        time.sleep(0.3)


@contextmanager
def snapshot_devices(runner: Any, zvol: str) -> Iterator[str]:
    """Make ``zvol``'s snapshots readable as ``/dev/zvol/<zvol>@<snap>`` (``snapdev=visible``)
    for the block, then put the property back as it was (inherited or the local value)."""
    value, source = runner.run(["zfs", "get", "-H", "-o", "value,source", "snapdev", zfs_argv.check_dataset(zvol)],
                               timeout=60).stdout.split("\t")[:2]
    if value == "visible":
        yield f"/dev/zvol/{zvol}"
        return
    runner.run(zfs_argv.set_property(zvol, "snapdev", "visible"), timeout=60)
    try:
        yield f"/dev/zvol/{zvol}"
    finally:
        if source.strip() == "local":
            runner.run(zfs_argv.set_property(zvol, "snapdev", value), timeout=60)
        else:
            runner.run(zfs_argv.inherit(zvol, "snapdev"), timeout=60)


def describe(runner: Any, store: Any, vm_name: str, volumes: list[str], datasets: list[SourceDataset],
             snapshot: str) -> list[FileEntry]:
    """Manifest entries of the VM's snapshot: each zvol (``stored`` = its dataset relative to
    the VM's, sha256 of the whole device) and each file of the VM's dataset (``stored`` =
    ``files/<name>``; disk images of ``disk_type = "file"`` datastores are role ``disk``)."""
    entries: list[FileEntry] = []
    for item in datasets:
        if item.kind != "volume":
            continue
        size = int(runner.run(zfs_argv.get_values(["volsize"], item.name), timeout=60).stdout.split()[0])
        with snapshot_devices(runner, item.name) as prefix:
            device = f"{prefix}@{snapshot}"
            wait_for(runner, device)
            digest = sha256(runner, device)
        role = "disk" if item.relative in volumes else "other"
        entries.append(FileEntry(role=role, original=item.relative, stored=item.relative, size=size, allocated=0,
                                 mode="0600", mtime=0.0, sha256=digest, chunks=[],
                                 volume=item.relative if role == "disk" else None))
    root = f"{store.vm_dir(vm_name)}/.zfs/snapshot/{snapshot}"
    listing = runner.run(["find", root, "-maxdepth", "1", "-type", "f"], timeout=120).stdout.split("\n")
    images = {str(store.volume_path(vm_name, v)).rsplit("/", 1)[-1]: v for v in volumes}
    for path in sorted(p for p in listing if p.startswith(root + "/")):
        name = path[len(root) + 1:]
        size = int(runner.run(["wc", "-c", path], timeout=60).stdout.split()[0])
        volume = images.get(name)
        entries.append(FileEntry(role="disk" if volume else "config", original=name, stored=f"files/{name}",
                                 size=size, allocated=0, mode="0600", mtime=0.0, sha256=sha256(runner, path),
                                 chunks=[], volume=volume))
    return entries


def release_older(store: Any, runner: Any, vm_name: str, dataset: str, prefix: str, keep: str, log: Any) -> list[str]:
    """Release (``zfs release``) and destroy this target's earlier base snapshots of the VM
    (named ``prefix…``), all but ``keep``: done only after the new point is complete, so the
    chain always has a held base on the source. A snapshot another tag still holds stays."""
    released = []
    for name, _ in snapshots(runner, dataset):
        if name.startswith(prefix) and name != keep:
            full = f"{dataset}@{name}"
            # Already released when an undone run left it (busy then): release may say "no such tag".
            runner.run(zfs_argv.release(full), check=False, timeout=120)
            left = zfs_argv.parse_holds(runner.run(zfs_argv.holds(full), check=False, timeout=120).stdout)
            if left:
                log(f"{full} stays: still held by {', '.join(sorted({tag for _, tag in left}))}", "warning")
                continue
            gone = runner.run(zfs_argv.destroy_snapshot(full), check=False, timeout=300)
            if gone.returncode == 0:
                released.append(name)
            else:
                log(f"could not destroy the earlier base {full}: {gone.stderr.strip()[-200:]}", "warning")
    return released
