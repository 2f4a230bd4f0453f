"""The storage backend interface for VM disks (directories in the core, ZFS in a plugin)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ProgressCallback = Callable[[int, str], None]


@dataclass(frozen=True)
class Volume:
    """A VM disk as the backend holds it: ``path`` is what the hypervisor opens (a file, or
    a device such as ``/dev/zvol/tank/bhype/vms/web1/disk0``)."""

    name: str
    path: Path
    size: int


class StorageBackend(ABC):
    """One datastore holding VM disks and ISOs. Every host command goes through the runner."""

    name: str = ""

    @abstractmethod
    def vm_dir(self, vm_name: str) -> Path:
        """The VM's private directory (created by :meth:`create_vm_dir`)."""

    @abstractmethod
    def create_vm_dir(self, vm_name: str) -> Path:
        """Create the VM's directory (or dataset); refuses if it already exists."""

    @abstractmethod
    def remove_vm_dir(self, vm_name: str) -> None:
        """Remove the VM's directory and everything left in it."""

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
    def copy_volume(
        self, src_vm: str, volume: str, dst_vm: str, dst_volume: str, progress: ProgressCallback | None = None
    ) -> Volume:
        """Copy a disk (sparse-aware) reporting progress 0-100."""

    @abstractmethod
    def iso_path(self, iso: str) -> Path:
        """Where ISO ``iso`` lives in the datastore's ISO folder (confined, may not exist)."""
