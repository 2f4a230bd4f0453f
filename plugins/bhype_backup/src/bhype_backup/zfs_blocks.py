"""A ZFS VM (zvol disks) backed up to a file target: a block-aware copy of a held snapshot.

A zvol is a device, not a file rsync can diff against the previous point. So ``snapshot`` mode
on a zvol datastore (``export-stream`` without ``export-files``) reads each disk from the
held snapshot's device (``snapdev=visible``: ``/dev/zvol/<zvol>@<snap>``, zfsprops(7)) with
``dd bs=1M`` on the datastore's host into ``dd bs=1M conv=sparse`` on the worker's machine:
blocks of zeros become holes (dd(1), GNU and FreeBSD: ``sparse`` seeks over NUL output
blocks), the file is then cut to the zvol's size. The files of the VM's dataset (NVRAM,
cloud-init seed) come from ``.zfs/snapshot/<snap>`` the same way (``cat`` | ``dd``). The
staged image is what rsync then sends with its delta algorithm against the previous point,
and what the manifest's checksums are of. The snapshot stays held (``zfs hold bhype-backup``)
until the transfer ends, then it is released and destroyed.

The stream goes from one process to the other through the runner's ``pipe`` (never through
this process); staging needs free space for the disks' data (holes cost nothing).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bhype_backup import zfs_argv, zfs_source
from bhype_core.plugin_api import BhypeError, Cancelled, CommandCancelled, StorageCapability, active_driver

BLOCK = "1M"


def wants_block_copy(store: Any, mode: str) -> bool:
    """Whether ``mode`` on ``store`` goes through this module (a snapshot of zvol disks)."""
    caps = store.capabilities
    return (mode == "snapshot" and StorageCapability.SNAPSHOT in caps and StorageCapability.EXPORT_STREAM in caps
            and StorageCapability.EXPORT_FILES not in caps)


def _pipe(context: Any, producer: list[str], consumer: list[str], label: str) -> None:
    runtime = context.runtime
    try:
        result = runtime.runner.pipe(producer, consumer, to=runtime.local_runner, timeout=7 * 24 * 3600,
                                     check=False, cancel=context.cancel_requested)
    except CommandCancelled as exc:
        raise Cancelled(f"{label}: copy cancelled after {exc.duration:.1f}s") from exc
    if not result.ok:
        error = result.error()
        raise BhypeError(f"{label}: copying from the snapshot failed (exit {error.returncode}): "
                         f"{error.stderr.strip()[-300:]}")


def copy_device(context: Any, device: str, size: int, destination: Path, label: str) -> None:
    """``dd if=DEVICE bs=1M`` there | ``dd of=FILE bs=1M conv=sparse`` here, cut to ``size``."""
    _pipe(context, ["dd", f"if={device}", f"bs={BLOCK}"], ["dd", f"of={destination}", f"bs={BLOCK}", "conv=sparse"],
          label)
    os.truncate(destination, size)  # a hole at the end: dd seeked past it without writing
    if destination.stat().st_size != size:
        raise BhypeError(f"{label}: copied {destination.stat().st_size} bytes of {size}")


def config_names(runtime: Any) -> set[str]:
    """The VM directory files a backup keeps: the cloud-init seed and the driver's NVRAM copy."""
    from bhype_backup.sources import SEED_FILE

    rules = active_driver(runtime).firmware_rules()
    return {SEED_FILE, *([rules.nvram_file] if rules is not None else [])}


@contextmanager
def block_view(context: Any, ref: Any, store: Any, volumes: list[str], staging: Path) -> Iterator[Any]:
    """Yield a :class:`~bhype_backup.sources.SourceView` of local copies of the VM's held snapshot."""
    from bhype_backup.sources import HOLD_TAG, SourceView

    runner = context.runtime.runner
    point = store.snapshot(ref.name, volumes, HOLD_TAG)
    context.log(f"snapshot {point.name} of {ref.name} taken and held ({HOLD_TAG}); copying its blocks")
    try:
        staging.mkdir(parents=True, exist_ok=True)
        dataset = store.vm_dataset(ref.name)
        disks: dict[str, Path] = {}
        for item in zfs_source.tree(runner, dataset):
            if item.kind != "volume" or item.relative not in volumes:
                continue
            size = int(runner.run(zfs_argv.get_values(["volsize"], item.name), timeout=60).stdout.split()[0])
            copy = staging / f"{item.relative}.img"
            with zfs_source.snapshot_devices(runner, item.name) as prefix:
                device = f"{prefix}@{point.name}"
                zfs_source.wait_for(runner, device)
                copy_device(context, device, size, copy, f"disk {item.relative}")
            disks[item.relative] = copy
            context.log(f"disk {item.relative}: {size} bytes copied from {item.name}@{point.name} (holes kept)")
        missing = [v for v in volumes if v not in disks]
        if missing:
            raise BhypeError(f"disk(s) {', '.join(missing)} of {ref.name} are not zvols of {dataset}")
        root = f"{store.vm_dir(ref.name)}/.zfs/snapshot/{point.name}"
        listing = runner.run(["find", root, "-maxdepth", "1", "-type", "f"], timeout=120).stdout.split("\n")
        config: dict[str, Path] = {}
        (staging / "config").mkdir(exist_ok=True)
        wanted = config_names(context.runtime)
        for path in sorted(p for p in listing if p.startswith(root + "/")):
            name = path[len(root) + 1:]
            if name not in wanted:
                continue  # logs and the like: not part of a backup (as for directory storage)
            local = staging / "config" / name
            _pipe(context, ["cat", "--", path], ["dd", f"of={local}", "bs=65536"], name)
            config[name] = local
        yield SourceView(disks, config, "consistent")
    finally:
        store.release(point)
        context.log(f"snapshot {point.name} released")
