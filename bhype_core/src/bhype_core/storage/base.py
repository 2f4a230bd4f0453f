"""The storage backend interface for VM disks (directories in the core, ZFS in a plugin)."""

from __future__ import annotations

import os
import shutil
from abc import ABC, abstractmethod
from collections.abc import Callable, Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bhype_core.errors import NotFound, NotSupported, ValidationErrors
from bhype_core.safe_files import copy_fd, open_regular
from bhype_core.storage.capabilities import (
    ConsistentPoint,
    ExportFiles,
    ExportStream,
    SpaceStats,
    StorageCapability,
    VolumeStats,
)

ProgressCallback = Callable[[int, str], None]


@dataclass(frozen=True)
class Volume:
    """A VM disk as the backend holds it: ``path`` is what the hypervisor opens (a file, or
    a device such as ``/dev/zvol/tank/bhype/vms/web1/disk0``).

    ``device`` says which, as the backend knows it (never guessed from this machine's file
    system: the path may be on the host the runner reaches): ``True`` for a block device (a
    zvol), written in place and never replaced by a rename; ``False`` for an image file.
    ``path`` is on the datastore's host, the one ``runtime.runner`` reaches.
    """

    name: str
    path: Path
    size: int
    device: bool = False


class StorageBackend(ABC):
    """One datastore holding VM disks and ISOs. Every host command goes through the runner.

    Beyond the required disk operations a backend declares :attr:`capabilities` and implements
    the matching methods below (snapshot/release, export, stats); the defaults raise
    :class:`~bhype_core.errors.NotSupported` naming the backend (issue 12).
    """

    name: str = ""
    #: What this backend can do beyond creating, growing and copying disks.
    capabilities: frozenset[StorageCapability] = frozenset()

    @abstractmethod
    def vm_dir(self, vm_name: str) -> Path:
        """The VM's private directory (created by :meth:`create_vm_dir`)."""

    @abstractmethod
    def create_vm_dir(self, vm_name: str) -> Path:
        """Create the VM's directory (or dataset); refuses if it already exists."""

    @abstractmethod
    def remove_vm_dir(self, vm_name: str) -> bool:
        """Remove the VM's directory and everything left in it; absent is fine.

        :returns: whether there was anything to remove.
        """

    @abstractmethod
    def create_volume(self, vm_name: str, volume: str, size: int) -> Volume:
        """Create a sparse disk of ``size`` bytes; refuses an existing one."""

    @abstractmethod
    def grow_volume(self, vm_name: str, volume: str, size: int) -> Volume:
        """Grow a disk to ``size`` bytes; shrinking is refused (it would lose data)."""

    @abstractmethod
    def delete_volume(self, vm_name: str, volume: str) -> None:
        """Delete a disk."""

    @abstractmethod
    def volume(self, vm_name: str, volume: str) -> Volume:
        """An existing disk; :class:`~bhype_core.errors.NotFound` if it is absent."""

    @abstractmethod
    def volume_path(self, vm_name: str, volume: str) -> Path:
        """Where disk ``volume`` is or would be (a plan shows a disk not created yet)."""

    @abstractmethod
    def copy_volume(
        self, src_vm: str, volume: str, dst_vm: str, dst_volume: str, progress: ProgressCallback | None = None
    ) -> Volume:
        """Copy a disk (sparse-aware) reporting progress 0-100."""

    @abstractmethod
    def iso_path(self, iso: str) -> Path:
        """Where ISO ``iso`` lives in the datastore's ISO folder (confined, may not exist)."""

    # ---------------------------------------------------------------------------------------
    # Capabilities (issue 12). Each default refuses, naming the backend.

    def require(self, capability: StorageCapability, path: str = "datastore") -> None:
        """Raise :class:`~bhype_core.errors.NotSupported` (422 naming ``path``) unless this
        backend declares ``capability``: what a route or a task's plan calls before queuing."""
        if capability not in self.capabilities:
            raise NotSupported(str(capability), f"storage backend {self.name or type(self).__name__}", path)

    def snapshot(self, vm_name: str, volumes: Collection[str], tag: str, name: str | None = None) -> ConsistentPoint:
        """Take a consistent point of ``volumes`` of VM ``vm_name`` (all at one instant) and
        hold it with ``tag`` until :meth:`release`; ``name`` defaults to a fresh one.

        :raises NotSupported: the backend has no ``snapshot`` capability.
        """
        self.require(StorageCapability.SNAPSHOT)
        raise NotImplementedError

    def release(self, point: ConsistentPoint) -> None:
        """Drop ``point``'s hold and destroy it (a point another holder still holds stays)."""
        self.require(StorageCapability.SNAPSHOT)
        raise NotImplementedError

    def export_stream(self, point: ConsistentPoint, volume: str | None = None) -> ExportStream:
        """The producer argv that streams disk ``volume`` of ``point`` (``zfs send``); ``None``
        streams the VM's own directory (NVRAM, file disks).

        :raises NotSupported: the backend has no ``export-stream`` capability.
        """
        self.require(StorageCapability.EXPORT_STREAM)
        raise NotImplementedError

    def layout(self) -> dict[str, Any]:
        """How this datastore keeps VMs, for another host deciding how to send it one (the
        host registry's ``capacity.datastores``; moves pick ``zfs send`` from it): a ZFS
        datastore says ``{"dataset": …, "disk_type": "zvol"|"file"}``. Nothing by default.
        Answered without a host command (the heartbeat calls it)."""
        return {}

    def vm_dataset(self, vm_name: str) -> str:
        """The dataset that holds VM ``vm_name`` (its files and, below it, its zvols): what a
        ``zfs send``/``zfs receive`` of the whole VM names, e.g. ``tank/bhype/vms/web1``
        (ZFS targets of backups send it and receive restores into it).

        :raises NotSupported: the backend has no ``export-stream`` capability.
        """
        self.require(StorageCapability.EXPORT_STREAM)
        raise NotImplementedError

    def export_files(self, vm_name: str, point: ConsistentPoint | None = None) -> ExportFiles:
        """The files of VM ``vm_name`` for rsync: those of ``point``, or with ``None`` the live
        files (consistent only while the VM is stopped).

        :raises NotSupported: the backend has no ``export-files`` capability.
        """
        self.require(StorageCapability.EXPORT_FILES)
        raise NotImplementedError

    def space(self) -> SpaceStats:
        """Size, used and free bytes of the datastore.

        :raises NotSupported: the backend has no ``stats`` capability.
        """
        self.require(StorageCapability.STATS)
        raise NotImplementedError

    def volume_stats(self, vm_name: str, volume: str) -> VolumeStats:
        """Size the guest sees and bytes disk ``volume`` occupies.

        :raises NotSupported: the backend has no ``stats`` capability.
        """
        self.require(StorageCapability.STATS)
        raise NotImplementedError

    def adopt_volume(self, vm_name: str, volume: str, source: str) -> Volume:
        """Make the existing disk at ``source`` (an image file, or a ``/dev/zvol/…`` device)
        disk ``volume`` of VM ``vm_name`` **in place**: no byte is copied, the guest's data stays
        where it is (a hard link in the same file system, a ``zfs rename`` in the same pool).
        The VM's directory must exist. Used by ``vmbhyve.import`` (issue 21).

        :raises NotSupported: the backend has no ``adopt`` capability.
        :raises ValidationErrors: ``source`` cannot be adopted in place (another file system or
            pool, not a regular file or volume), path ``source``.
        :raises Conflict: disk ``volume`` exists already.
        """
        self.require(StorageCapability.ADOPT)
        raise NotImplementedError

    def release_volume(self, vm_name: str, volume: str, source: str) -> None:
        """Undo :meth:`adopt_volume`: give the disk back at ``source`` (the data is never
        deleted) and forget it as disk ``volume``; absent is fine.

        :raises NotSupported: the backend has no ``adopt`` capability.
        """
        self.require(StorageCapability.ADOPT)
        raise NotImplementedError

    # ---------------------------------------------------------------------------------------
    # Files in the VM's directory (the UEFI variable store). The directory belongs to the
    # backend: it may be on the host the runner reaches, not on this machine. These default
    # implementations use this machine's file system; a backend whose directories live on
    # the runner's host (ZFS over SSH) overrides them with host commands.

    def vm_file_exists(self, vm_name: str, filename: str) -> bool:
        """Whether ``filename`` exists in the VM's directory."""
        return os.path.lexists(Path(self.vm_dir(vm_name)) / check_filename(filename))

    def install_vm_file(self, vm_name: str, source: Path, filename: str, mode: int = 0o600) -> Path:
        """Copy host file ``source`` into the VM's directory as ``filename`` (replacing it)
        with permissions ``mode``; returns the copy's path.

        :raises NotFound: ``source`` is not a regular file on the host.
        """
        if not Path(source).is_file():
            raise NotFound(f"{source} does not exist")
        target = Path(self.vm_dir(vm_name)) / check_filename(filename)
        partial = target.with_name(f".{target.name}.partial")
        # Written under a temporary name opened without following links, then renamed over the
        # target: a symlink planted at either name is replaced, never written through.
        partial.unlink(missing_ok=True)
        out = open_regular(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode=mode)
        try:
            with open(source, "rb") as handle:
                copy_fd(handle.fileno(), out)
            os.fchmod(out, mode)
        finally:
            os.close(out)
        os.replace(partial, target)
        return target

    def remove_vm_file(self, vm_name: str, filename: str) -> None:
        """Remove ``filename`` from the VM's directory; absent is fine."""
        (Path(self.vm_dir(vm_name)) / check_filename(filename)).unlink(missing_ok=True)

    def clear_vm_dir(self, vm_name: str, keep_volumes: Collection[str] = ()) -> list[str]:
        """Remove every entry of the VM's directory except the files of ``keep_volumes`` (never
        following links); returns the removed paths. The directory itself stays."""
        vm_dir = Path(self.vm_dir(vm_name))
        keep = {self.volume_path(vm_name, volume) for volume in keep_volumes}
        removed: list[str] = []
        if not vm_dir.is_dir() or vm_dir.is_symlink():
            return removed
        for entry in os.scandir(vm_dir):
            if Path(entry.path) in keep:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
            removed.append(entry.path)
        return removed


def check_filename(filename: str) -> str:
    """A plain file name (no directory part, not ``.``/``..``), else :class:`ValidationErrors`."""
    if not filename or "/" in filename or "\0" in filename or filename in (".", ".."):
        raise ValidationErrors([("filename", f"{filename!r} is not a plain file name")])
    return filename
