"""Where a backup reads a VM's files from, per consistency mode, and what that gives.

* ``stop``: a running VM is stopped gracefully (sub-task ``vm.stop``; the backup holds the
  VM's lock, its children may take it), copied, and started again (``vm.start``) even when the
  copy fails; the window is recorded. A stopped VM is simply copied.
* ``snapshot``: the datastore's consistent point (ZFS: ``zfs snapshot -r`` + ``zfs hold``),
  read from the snapshot (``.zfs/snapshot/<name>``), released when the transfer ends. On a
  datastore without snapshots (directory storage) the driver's consistent point of the
  running VM (``DriverCapability.CONSISTENT_POINT``; QEMU: QMP overlays, the guest keeps
  running) — :mod:`bhype_backup.frozen_source`; a stopped VM is copied as it is. Neither:
  the mode is refused (a clear error before anything changes).
* ``crash``: the files as they are while the VM runs, copied first to a private staging copy
  (``cp --sparse=always --reflink=auto``, GNU coreutils cp(1)) so the manifest's checksums are
  of exactly what is sent; labelled crash-consistent, with a warning on directory storage.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bhype_core.plugin_api import (
    BhypeError,
    DriverCapability,
    StorageCapability,
    ValidationErrors,
    active_driver,
    is_running,
)

SEED_FILE = "cidata.iso"  # bhype_core.cloudinit.SEED_FILE: the cloud-init seed in the VM directory
HOLD_TAG = "bhype-backup"


@dataclass
class SourceView:
    """The files to copy: ``disks`` (volume name → path) and ``config`` (file name → path, the
    NVRAM copy and the cloud-init seed), all stable while the view is open."""

    disks: dict[str, Path]
    config: dict[str, Path]
    consistency: str
    warnings: list[str] = field(default_factory=list)
    stop_window: dict[str, Any] | None = None


def volume_names(spec: Any) -> list[str]:
    """The VM's disk volume names, in spec order (``validate_spec`` names every disk)."""
    return [disk.volume or f"disk{index}" for index, disk in enumerate(spec.disks)]


def store_point(store: Any) -> bool:
    """Whether the datastore gives snapshot mode its consistent point itself (ZFS)."""
    return all(c in store.capabilities for c in (StorageCapability.SNAPSHOT, StorageCapability.EXPORT_FILES))


def check_mode(store: Any, mode: str, driver: Any = None) -> None:
    """Refuse a mode neither the datastore nor the driver can give (before anything changes)."""
    if mode not in ("snapshot", "stop", "crash"):
        raise ValidationErrors([("mode", "must be snapshot, stop or crash")])
    if mode == "snapshot" and not store_point(store):
        if driver is not None and DriverCapability.CONSISTENT_POINT in driver.capabilities:
            return
        missing = [c.value for c in (StorageCapability.SNAPSHOT, StorageCapability.EXPORT_FILES)
                   if c not in store.capabilities]
        who = f"driver {getattr(driver, 'name', '') or '?'}" if driver is not None else "the driver"
        raise ValidationErrors([("mode", f"snapshot mode needs a datastore with {' and '.join(missing)} "
                                         f"(datastore {store.datastore} has not) or a driver with a consistent "
                                         f"point of a running VM ({who} has not); use stop or crash")])


def _config_files(runtime: Any, root: Path) -> dict[str, Path]:
    names = [SEED_FILE]
    rules = active_driver(runtime).firmware_rules()
    if rules is not None:
        names.append(rules.nvram_file)
    return {name: root / name for name in names if (root / name).is_file() and not (root / name).is_symlink()}


def _subtask(context: Any, kind: str, name: str) -> None:
    [outcome] = context.wait(context.submit(kind, {"name": name}))
    if not outcome.ok:
        message = (outcome.error or {}).get("message", outcome.state)
        raise BhypeError(f"{kind} of {name} failed during the backup: {message}")


@contextmanager
def open_source(context: Any, ref: Any, store: Any, mode: str, staging: Path) -> Iterator[SourceView]:
    """Yield the VM's files for ``mode`` and undo what that took when the block ends."""
    runtime = context.runtime
    volumes = volume_names(ref.spec)
    running = is_running(runtime, ref.name)
    if mode == "snapshot" and not store_point(store):
        from bhype_backup.frozen_source import frozen_view

        with frozen_view(context, ref, store, volume_names(ref.spec), _config_files(runtime, Path(ref.vm_dir)),
                         running, staging) as view:
            yield view
        return
    if mode == "snapshot":
        point = store.snapshot(ref.name, volumes, HOLD_TAG)
        context.log(f"snapshot {point.name} of {ref.name} taken and held ({HOLD_TAG})")
        try:
            exported = store.export_files(ref.name, point)
            disks = {v: exported.root / Path(store.volume_path(ref.name, v)).name for v in volumes}
            yield SourceView(disks, _config_files(runtime, exported.root), "consistent")
        finally:
            store.release(point)
            context.log(f"snapshot {point.name} released")
        return
    disks = {v: Path(store.volume(ref.name, v).path) for v in volumes}
    config = _config_files(runtime, Path(ref.vm_dir))
    if mode == "stop" and running:
        stopped_at = datetime.now(UTC)
        _subtask(context, "vm.stop", ref.name)
        context.log(f"{ref.name} stopped for the backup")
        try:
            view = SourceView(disks, config, "consistent", stop_window={"stopped_at": stopped_at.isoformat()})
            yield view
        finally:
            _subtask(context, "vm.start", ref.name)
            started_at = datetime.now(UTC)
            assert view.stop_window is not None
            view.stop_window.update(started_at=started_at.isoformat(),
                                    seconds=round((started_at - stopped_at).total_seconds(), 3))
            context.log(f"{ref.name} started again after {view.stop_window['seconds']:.1f}s")
        return
    if mode == "crash" and running:
        staging.mkdir(parents=True, exist_ok=True)
        copies: dict[str, Path] = {}
        try:
            for volume, path in {**disks, **{f"config:{k}": v for k, v in config.items()}}.items():
                copy = staging / f"{len(copies)}-{path.name}"
                context.runner.run(["cp", "--sparse=always", "--reflink=auto", "--", str(path), str(copy)],
                                   timeout=24 * 3600)
                copies[volume] = copy
            warnings = ["crash-consistent: copied while the VM ran (like pulling the power plug)"]
            if StorageCapability.SNAPSHOT not in store.capabilities:
                warnings.append(f"datastore {store.datastore} has no snapshots: the disks were copied one after "
                                "the other while the VM wrote to them")
            for warning in warnings:
                context.log(warning, "warning")
            yield SourceView({v: copies[v] for v in disks}, {k: copies[f"config:{k}"] for k in config},
                             "crash-consistent", warnings)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
        return
    yield SourceView(disks, config, "consistent")
