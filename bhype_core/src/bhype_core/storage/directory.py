"""Directory storage: each VM disk is a sparse raw image file under one datastore directory.

Layout (vm-bhyve's, reference 10)::

    <root>/vms/<vm>/            the VM's private directory (NVRAM copy, logs, sockets)
    <root>/vms/<vm>/<disk>.img  one sparse raw image per disk
    <root>/isos/<name>.iso      the ISO folder

The backend works on the worker's own file system with Python's file calls, not through the
host runner: the worker runs as root on the host that runs the hypervisor (the supervisor is
a local process), so the datastore is local to it; file calls give a sparse-aware copy with
byte progress and symlink-safe opens that ``truncate``/``cp`` through argv cannot. A remote
runner target therefore cannot use this backend (the datastore factory refuses it).

Every path is confined: names are checked (no ``/``, ``..``, absolute or option-like names),
the resolved path (``realpath``: every symlink followed) must stay inside the resolved root,
and files are opened with ``O_NOFOLLOW`` so a symlink planted as a disk is refused.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
from pathlib import Path

from bhype_core.errors import BhypeError, Conflict, NotFound, ValidationErrors
from bhype_core.spec_parts import ISO_RE, NAME_RE
from bhype_core.storage.adopt import link_in_place, unlink_adopted
from bhype_core.storage.base import ProgressCallback, StorageBackend, Volume
from bhype_core.storage.capabilities import (
    ConsistentPoint,
    ExportFiles,
    SpaceStats,
    StorageCapability,
    VolumeStats,
)
from bhype_core.storage.sparse import copy_sparse
from bhype_core.units import human_size

VMS_DIR = "vms"
ISOS_DIR = "isos"
IMAGE_SUFFIX = ".img"
PARTIAL_PREFIX = ".partial-"
DIR_MODE = 0o750
IMAGE_MODE = 0o600


class OutsideDatastore(BhypeError):
    """A path would leave the datastore (through ``..``, an absolute name or a symlink)."""

    code = "outside_datastore"
    http_status = 403


def check_name(name: object, field: str, pattern: object = NAME_RE) -> str:
    """Return ``name`` when it is a safe single path component, else raise naming ``field``.

    :raises ValidationErrors: empty, absolute, ``.``/``..``, containing ``/`` or NUL, or not
        matching ``pattern`` (letters, digits, ``-``, ``_``, ``.``, starting with a letter or
        digit).
    """
    if not isinstance(name, str) or not name:
        raise ValidationErrors([(field, "must be a non-empty name")])
    if name in (".", "..") or "/" in name or "\0" in name or os.path.isabs(name):
        raise ValidationErrors([(field, f"{name!r} is not a plain name (no '/', '..' or absolute paths)")])
    if not pattern.match(name):  # type: ignore[attr-defined]
        raise ValidationErrors(
            [(field, f"{name!r}: use letters, digits, '-', '_' or '.', starting with a letter or digit")]
        )
    return name


class DirectoryStorage(StorageBackend):
    """A datastore that is a directory on the worker's host.

    Capabilities (issue 12): space/stats and a file list for rsync, but **no snapshot**: plain
    files have no instant, atomic point across a VM's disks (a copy of a running VM's disks is
    torn; reflinks are per file and only on some file systems), so ``snapshot`` is refused as
    "not supported by storage backend directory" and a backup of a directory VM stops it and
    reads the live files (:meth:`export_files` says they are not a consistent point).

    :param root: the datastore directory (absolute); created on first write if missing.
    :param datastore: the datastore's configured name, for messages.
    """

    name = "directory"
    capabilities = frozenset({StorageCapability.EXPORT_FILES, StorageCapability.STATS, StorageCapability.ADOPT})

    def __init__(self, root: Path | str, datastore: str = "default") -> None:
        root = Path(root)
        if not root.is_absolute():
            raise ValidationErrors([(f"datastores.{datastore}.path", f"{root} must be an absolute path")])
        self.datastore = datastore
        self.root = Path(os.path.realpath(root))

    def __repr__(self) -> str:
        return f"DirectoryStorage({str(self.root)!r}, datastore={self.datastore!r})"

    # ---------------------------------------------------------------------------------------
    # Confinement

    def confined(self, *parts: str) -> Path:
        """``root/parts…`` after checking that, with every symlink resolved, it stays inside
        the datastore. Parts must already be checked names (this is the last line of defence).

        :raises OutsideDatastore: the resolved path leaves the datastore.
        """
        for part in parts:
            if not part or part in (".", "..") or "/" in part or "\0" in part:
                raise OutsideDatastore(f"{part!r} is not a plain name inside datastore {self.datastore}")
        path = self.root.joinpath(*parts)
        resolved = os.path.realpath(path)
        if os.path.commonpath([str(self.root), resolved]) != str(self.root):
            raise OutsideDatastore(
                f"{path} resolves to {resolved}, outside datastore {self.datastore} ({self.root})"
            )
        return path

    def _image(self, vm_name: str, volume: str) -> Path:
        check_name(vm_name, "name")
        check_name(volume, "volume")
        return self.confined(VMS_DIR, vm_name, volume + IMAGE_SUFFIX)

    def volume_path(self, vm_name: str, volume: str) -> Path:
        """``<root>/vms/<vm>/<volume>.img`` (whether it exists or not)."""
        return self._image(vm_name, volume)

    def _ensure_dir(self, *parts: str) -> Path:
        path = self.root
        if not path.is_dir():
            path.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        for index in range(len(parts)):
            path = self.confined(*parts[: index + 1])
            try:
                os.mkdir(path, DIR_MODE)
            except FileExistsError:
                if not path.is_dir():
                    raise Conflict(f"{path} exists and is not a directory") from None
        return path

    # ---------------------------------------------------------------------------------------
    # VM directories

    def vm_dir(self, vm_name: str) -> Path:
        check_name(vm_name, "name")
        return self.confined(VMS_DIR, vm_name)

    def create_vm_dir(self, vm_name: str) -> Path:
        path = self.vm_dir(vm_name)
        self._ensure_dir(VMS_DIR)
        try:
            os.mkdir(path, DIR_MODE)
        except FileExistsError:
            raise Conflict(f"the VM directory {path} already exists in datastore {self.datastore}") from None
        return path

    def remove_vm_dir(self, vm_name: str) -> bool:
        """Remove the VM's directory and everything in it; nothing happens when it is absent.

        A symlink in its place is removed as a link: its target is never touched.
        """
        check_name(vm_name, "name")
        # The link itself is inside the datastore even when it points out of it: judge the
        # parent, then look at the entry without following it.
        path = self.confined(VMS_DIR) / vm_name
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            return False
        if stat.S_ISLNK(info.st_mode) or not stat.S_ISDIR(info.st_mode):
            os.unlink(path)
            return True
        # rmtree removes symlinks inside as links and refuses to follow a symlinked root.
        shutil.rmtree(path)
        return True

    # ---------------------------------------------------------------------------------------
    # Volumes

    def create_volume(self, vm_name: str, volume: str, size: int) -> Volume:
        _check_size(size)
        path = self._image(vm_name, volume)
        if not self.vm_dir(vm_name).is_dir():
            raise NotFound(f"VM directory for {vm_name!r} does not exist in datastore {self.datastore}")
        try:
            # O_EXCL also refuses a symlink (even a dangling one) at the path: never write through it.
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, IMAGE_MODE)
        except FileExistsError:
            raise Conflict(f"disk {volume} of VM {vm_name} already exists ({path})") from None
        try:
            os.ftruncate(fd, size)  # sparse: no blocks are allocated until the guest writes
        except OSError as exc:
            os.close(fd)
            os.unlink(path)
            raise _io_error(f"cannot create disk {volume} of {human_size(size)}", path, exc) from exc
        os.close(fd)
        return Volume(volume, path, size)

    def grow_volume(self, vm_name: str, volume: str, size: int) -> Volume:
        _check_size(size)
        current = self.volume(vm_name, volume)
        if size < current.size:
            raise ValidationErrors([(
                "size",
                f"disk {volume} is {human_size(current.size)}; shrinking to {human_size(size)} "
                "would destroy data and is refused",
            )])
        if size == current.size:
            return current
        fd = _open_image(current.path, os.O_WRONLY)
        try:
            os.ftruncate(fd, size)
        except OSError as exc:
            raise _io_error(f"cannot grow disk {volume}", current.path, exc) from exc
        finally:
            os.close(fd)
        return Volume(volume, current.path, size)

    def delete_volume(self, vm_name: str, volume: str) -> None:
        path = self._image(vm_name, volume)
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            raise NotFound(f"disk {volume} of VM {vm_name} does not exist") from None
        if stat.S_ISDIR(info.st_mode):
            raise Conflict(f"{path} is a directory, not a disk image")
        os.unlink(path)  # a symlink is removed as a link, its target untouched

    def volume(self, vm_name: str, volume: str) -> Volume:
        path = self._image(vm_name, volume)
        try:
            info = os.lstat(path)
        except FileNotFoundError:
            raise NotFound(f"disk {volume} of VM {vm_name} does not exist ({path})") from None
        if not stat.S_ISREG(info.st_mode):
            raise Conflict(f"{path} is not a regular file (a symlink or device is never used as a disk)")
        return Volume(volume, path, info.st_size)

    def adopt_volume(self, vm_name: str, volume: str, source: str) -> Volume:
        """Hard-link image ``source`` as disk ``volume`` (same inode, nothing copied); see
        :mod:`bhype_core.storage.adopt` for what is refused."""
        target = self._image(vm_name, volume)
        if not self.vm_dir(vm_name).is_dir():
            raise NotFound(f"VM directory for {vm_name!r} does not exist in datastore {self.datastore}")
        info = link_in_place(Path(source), target, self.datastore)
        return Volume(volume, target, info.st_size)

    def release_volume(self, vm_name: str, volume: str, source: str) -> None:
        """Drop the datastore's link to ``source`` (renamed back if ``source`` is gone)."""
        unlink_adopted(Path(source), self._image(vm_name, volume))

    def copy_volume(
        self,
        src_vm: str,
        volume: str,
        dst_vm: str,
        dst_volume: str,
        progress: ProgressCallback | None = None,
    ) -> Volume:
        """Copy a disk, holes stay holes; progress 0-100 as whole percent changes.

        The copy is written under a hidden temporary name and renamed at the end, so a failed
        or interrupted copy never leaves a half disk under the destination name.
        """
        source = self.volume(src_vm, volume)
        target = self._image(dst_vm, dst_volume)
        if os.path.lexists(target):
            raise Conflict(f"disk {dst_volume} of VM {dst_vm} already exists ({target})")
        if not self.vm_dir(dst_vm).is_dir():
            raise NotFound(f"VM directory for {dst_vm!r} does not exist in datastore {self.datastore}")
        partial = self.confined(VMS_DIR, dst_vm, PARTIAL_PREFIX + dst_volume + IMAGE_SUFFIX)
        reported = -1

        def report(done: int, total: int) -> None:
            nonlocal reported
            percent = 100 if total == 0 else min(100, done * 100 // total)
            if progress is not None and percent != reported:
                reported = percent
                progress(percent, f"copying {volume} to {dst_vm}/{dst_volume}")

        src_fd = _open_image(source.path, os.O_RDONLY)
        try:
            dst_fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, IMAGE_MODE)
            try:
                copy_sparse(src_fd, dst_fd, source.size, report)
                os.fsync(dst_fd)
            finally:
                os.close(dst_fd)
            os.rename(partial, target)
        except BaseException:
            try:
                os.unlink(partial)
            except FileNotFoundError:
                pass
            raise
        finally:
            os.close(src_fd)
        return Volume(dst_volume, target, source.size)

    # ---------------------------------------------------------------------------------------
    # Capabilities: export as files, space and per-disk stats

    def export_files(self, vm_name: str, point: ConsistentPoint | None = None) -> ExportFiles:
        """The regular files of the VM's directory (links, sockets and FIFOs left out, nothing
        followed), relative to it, sorted; never consistent (no snapshots here): read them while
        the VM is stopped.

        :raises NotSupported: ``point`` given (this backend makes none).
        :raises NotFound: the VM directory does not exist.
        """
        if point is not None:
            self.require(StorageCapability.SNAPSHOT, "point")
        root = self.vm_dir(vm_name)
        if not root.is_dir() or root.is_symlink():
            raise NotFound(f"VM directory for {vm_name!r} does not exist in datastore {self.datastore}")
        files: list[str] = []
        for directory, subdirs, names in os.walk(root, followlinks=False):
            subdirs[:] = [d for d in subdirs if not os.path.islink(os.path.join(directory, d))]
            for entry in names:
                path = os.path.join(directory, entry)
                if stat.S_ISREG(os.lstat(path).st_mode):
                    files.append(os.path.relpath(path, root))
        return ExportFiles(root=root, files=sorted(files), consistent=False)

    def space(self) -> SpaceStats:
        """statvfs(3) of the datastore's file system (the nearest existing directory when the
        datastore is not created yet): free is what an unprivileged writer may still use."""
        probe = self.root
        while not probe.exists() and probe != probe.parent:
            probe = probe.parent
        info = os.statvfs(probe)
        used = (info.f_blocks - info.f_bfree) * info.f_frsize
        free = info.f_bavail * info.f_frsize
        return SpaceStats(size=used + free, used=used, free=free)

    def volume_stats(self, vm_name: str, volume: str) -> VolumeStats:
        """The image's length and its allocated blocks (stat(2) ``st_blocks``: 512-byte units)."""
        current = self.volume(vm_name, volume)
        return VolumeStats(name=volume, size=current.size, used=os.lstat(current.path).st_blocks * 512)

    # ---------------------------------------------------------------------------------------
    # ISOs

    def iso_path(self, iso: str) -> Path:
        check_name(iso, "cdrom", ISO_RE)
        return self.confined(ISOS_DIR, iso)

    def isos(self) -> list[str]:
        """Names of the regular files in the ISO folder (symlinks leaving the datastore are
        left out), sorted."""
        folder = self.root / ISOS_DIR
        if not folder.is_dir():
            return []
        names = []
        for entry in os.scandir(folder):
            if not ISO_RE.match(entry.name):
                continue
            try:
                path = self.confined(ISOS_DIR, entry.name)
            except OutsideDatastore:
                continue
            if path.is_file():
                names.append(entry.name)
        return sorted(names)


def _check_size(size: object) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise ValidationErrors([("size", f"must be a positive number of bytes, not {size!r}")])


def _open_image(path: Path, flags: int) -> int:
    try:
        return os.open(path, flags | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # O_NOFOLLOW on a symlink (open(2))
            raise Conflict(f"{path} is a symlink; disk images must be regular files") from None
        raise


def _io_error(what: str, path: Path, exc: OSError) -> BhypeError:
    return BhypeError(f"{what} at {path}: {exc.strerror or exc}")
