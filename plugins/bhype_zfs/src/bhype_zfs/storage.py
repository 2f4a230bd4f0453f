"""The ``zfs`` storage backend: a dataset per VM, disks as zvols (or image files in the dataset).

Layout under the datastore's dataset (``<pool>/<root>``, created by ``zfs.init_pool``)::

    <root>/vms/<vm>            filesystem: NVRAM copy, logs; user properties org.bhype:*
    <root>/vms/<vm>/<disk>     zvol (volmode=dev), the hypervisor opens /dev/zvol/<that>
    <mountpoint of vms>/<vm>/<disk>.img   or a sparse file, for datastores with disk_type=file
    <root>/isos                the ISO folder

Every command goes through the runner, so the datastore may live on the host an SSH runner
reaches. Snapshots of ``<root>/vms/<vm>`` taken with ``-r`` capture every disk atomically.
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from bhype_core.plugin_api import (
    NAME_RE,
    BhypeError,
    ConfigError,
    Conflict,
    NotFound,
    ProgressCallback,
    StorageBackend,
    ValidationErrors,
    Volume,
    check_filename,
    human_size,
    parse_size,
)
from bhype_zfs import argv
from bhype_zfs.dependents import refuse_if_dependents
from bhype_zfs.names import check_dataset
from bhype_zfs.parse import parse_zfs_get
from bhype_zfs.replicate import copy_dataset
from bhype_zfs.storage_adopt import ZfsAdopt
from bhype_zfs.storage_points import ZfsCapabilities, zfs_capabilities
from bhype_zfs.tool import ZfsHost, zfs_host, zfs_settings

IMAGE_SUFFIX = ".img"
DEVICE_WAIT = 30.0  # seconds for a new zvol's /dev/zvol link (udev on Linux, devfs on FreeBSD)
NAME_PROPERTY = "org.bhype:name"
UUID_PROPERTY = "org.bhype:uuid"
OWNER_PROPERTY = "org.bhype:owner"
SPEC_PROPERTY = "org.bhype:spec"
VM_PROPERTIES = (NAME_PROPERTY, UUID_PROPERTY, OWNER_PROPERTY, SPEC_PROPERTY)


class ZfsDatastoreOptions(BaseModel):
    """``[vm.datastores.<name>]`` keys for ``backend = "zfs"``."""

    model_config = ConfigDict(extra="ignore")

    name: str = "zfs"
    dataset: str = Field("", description="bHype's root dataset; empty = <zfs.pool>/<zfs.root>")
    disk_type: Literal["zvol", "file"] = Field("zvol", description="zvol per disk, or a sparse file in the VM dataset")
    sparse: bool = Field(True, description="zvols without refreservation (space used as written)")
    volblocksize: int | None = Field(None, description="zvol block size (e.g. 16K); empty = the pool's default")
    mountpoint: str = Field("", description="where the dataset is mounted; empty = ask zfs (once per process)")

    @field_validator("volblocksize", mode="before")
    @classmethod
    def _size(cls, value: object) -> int | None:
        if value in (None, "", 0):
            return None
        return parse_size(value, default_unit="B")


def _check(name: str, field: str) -> str:
    if not isinstance(name, str) or not NAME_RE.match(name):
        rule = "use letters, digits, '-', '_' or '.', starting with a letter or digit"
        raise ValidationErrors([(field, f"{name!r}: {rule}")])
    return name


class ZfsStorage(ZfsAdopt, ZfsCapabilities, StorageBackend):
    """A datastore on ZFS; see the module docstring for its layout. Snapshot/release, export
    and space come from :class:`~bhype_zfs.storage_points.ZfsCapabilities` (issue 12)."""

    name = "zfs"

    def __init__(
        self, host: ZfsHost, dataset: str, options: ZfsDatastoreOptions, copy_timeout: float | None = None
    ) -> None:
        self.host = host
        self.dataset = check_dataset(dataset, "dataset")
        self.options = options
        self.capabilities = zfs_capabilities(options.disk_type)
        self.datastore = options.name
        self.copy_timeout = copy_timeout
        self._mountpoints: dict[str, Path] = {}

    def layout(self) -> dict[str, Any]:
        """The dataset and disk type (what a ``zfs send`` of a VM here must match)."""
        return {"dataset": self.dataset, "disk_type": self.options.disk_type}

    def __repr__(self) -> str:
        return f"ZfsStorage({self.dataset!r}, datastore={self.datastore!r}, disk_type={self.options.disk_type!r})"

    # ---------------------------------------------------------------------------------------
    # Names

    @property
    def vms_dataset(self) -> str:
        return f"{self.dataset}/vms"

    def vm_dataset(self, vm_name: str) -> str:
        """``<root>/vms/<vm>``: the VM's filesystem (parent of its zvols)."""
        return f"{self.vms_dataset}/{_check(vm_name, 'name')}"

    def volume_dataset(self, vm_name: str, volume: str) -> str:
        """``<root>/vms/<vm>/<disk>``: a zvol disk."""
        return f"{self.vm_dataset(vm_name)}/{_check(volume, 'volume')}"

    def mountpoint(self, dataset: str) -> Path:
        """Where ``dataset`` is mounted (asked once, then remembered).

        :raises ConfigError: it is not mounted at a path (``none``/``legacy``).
        """
        if dataset not in self._mountpoints and self.options.mountpoint and dataset.startswith(self.dataset):
            self._mountpoints[dataset] = Path(self.options.mountpoint + dataset[len(self.dataset):])
        if dataset not in self._mountpoints:
            try:
                text = self.host.text(argv.get_properties(self.host.tools, ["mountpoint"], [dataset]))
            except BhypeError as exc:
                if not refused(exc):
                    raise
                # The API process may not ask the host: zfs's default mountpoint (/<dataset>),
                # right unless the pool or a parent sets another (then set `mountpoint`).
                return Path("/" + dataset)
            value = parse_zfs_get(text).get(dataset, {}).get("mountpoint")
            if value is None or not (value.value or "").startswith("/"):
                raise ConfigError(f"vm.datastores.{self.datastore}: {dataset} has no mountpoint path ({value})")
            self._mountpoints[dataset] = Path(value.value or "")
        return self._mountpoints[dataset]

    # ---------------------------------------------------------------------------------------
    # VM datasets

    def vm_dir(self, vm_name: str) -> Path:
        return self.mountpoint(self.vms_dataset) / _check(vm_name, "name")

    def create_vm_dir(self, vm_name: str) -> Path:
        dataset = self.vm_dataset(vm_name)
        try:
            self.host.run(argv.create_filesystem(self.host.tools, dataset, {NAME_PROPERTY: vm_name}))
        except Conflict:
            raise Conflict(f"the VM dataset {dataset} already exists in datastore {self.datastore}") from None
        except NotFound:
            raise NotFound(f"{self.vms_dataset} does not exist: run `bhype zfs init` (or adopt) first") from None
        return self.vm_dir(vm_name)

    def remove_vm_dir(self, vm_name: str) -> bool:
        """Destroy the VM's dataset with its disks and snapshots; absent is fine.

        :raises Conflict: another dataset is a clone of one of its snapshots, or a snapshot
            is held (nothing is destroyed then).
        """
        dataset = self.vm_dataset(vm_name)
        if not self.host.exists(dataset):
            return False
        refuse_if_dependents(self.host, dataset, f"VM {vm_name}")
        self.host.run(argv.destroy(self.host.tools, dataset, recursive=True))
        return True

    # The VM dataset's files (NVRAM copy) live on the host the runner reaches: handled with
    # host commands (test(1), cp(1), chmod(1), rm(1), ls(1); the same options on FreeBSD
    # and Linux), never with this process's file system.

    def vm_file_exists(self, vm_name: str, filename: str) -> bool:
        return self.host.has_path(self._vm_file(vm_name, filename))

    def install_vm_file(self, vm_name: str, source: Path, filename: str, mode: int = 0o600) -> Path:
        if not self.host.has_path(source, regular_file=True):
            raise NotFound(f"{source} does not exist on {self.host.runner.target}")
        target = self._vm_file(vm_name, filename)
        self.host.run(["cp", "--", str(source), target])
        self.host.run(["chmod", format(mode, "o"), target])
        return Path(target)

    def remove_vm_file(self, vm_name: str, filename: str) -> None:
        self.host.run(["rm", "-f", "--", self._vm_file(vm_name, filename)])

    def clear_vm_dir(self, vm_name: str, keep_volumes: Collection[str] = ()) -> list[str]:
        """Remove the files in the VM's mountpoint except kept file disks (zvols are datasets,
        not files: they stay whatever happens here)."""
        vm_dir = self.vm_dir(vm_name)
        keep = {str(self.volume_path(vm_name, volume)) for volume in keep_volumes}
        listing = self.host.probe(["ls", "-A", "--", str(vm_dir)])
        if listing.returncode != 0:
            return []
        doomed = [str(vm_dir / name) for name in listing.stdout.splitlines() if name]
        doomed = [path for path in doomed if path not in keep]
        if doomed:
            self.host.run(["rm", "-rf", "--", *doomed])
        return doomed

    def _vm_file(self, vm_name: str, filename: str) -> str:
        return str(self.vm_dir(vm_name) / check_filename(filename))

    def tag_vm(self, vm_name: str, uuid: str, owner: str, spec: Mapping[str, Any] | None = None) -> None:
        """Record the VM's identity as user properties on its dataset, so a pool imported on
        another host can be re-registered (``bhype zfs import-vms``). The spec is stored too
        when it fits a user property (8192 bytes, zfsprops(7))."""
        properties = {NAME_PROPERTY: vm_name, UUID_PROPERTY: uuid, OWNER_PROPERTY: owner}
        if spec is not None:
            text = json.dumps(spec, separators=(",", ":"), ensure_ascii=True)
            if len(text) <= 8192:
                properties[SPEC_PROPERTY] = text
        self.host.run(argv.set_properties(self.host.tools, self.vm_dataset(vm_name), properties))

    # ---------------------------------------------------------------------------------------
    # Volumes

    def _file(self, vm_name: str, volume: str) -> str:
        return str(self.vm_dir(vm_name) / (_check(volume, "volume") + IMAGE_SUFFIX))

    def volume_path(self, vm_name: str, volume: str) -> Path:
        """The zvol's device node, or the image file in the VM's dataset (disk_type ``file``)."""
        if self.options.disk_type == "file":
            return Path(self._file(vm_name, volume))
        return Path(argv.zvol_device(self.host.tools, self.volume_dataset(vm_name, volume)))

    def create_volume(self, vm_name: str, volume: str, size: int) -> Volume:
        _check_size(size)
        tools = self.host.tools
        if not self.host.exists(self.vm_dataset(vm_name)):
            raise NotFound(f"VM dataset {self.vm_dataset(vm_name)} does not exist in datastore {self.datastore}")
        if self.options.disk_type == "file":
            path = self._file(vm_name, volume)
            if self.host.has_path(path):
                raise Conflict(f"disk {volume} of VM {vm_name} already exists ({path})")
            self.host.run(argv.create_file(tools, path, size))
            return Volume(volume, Path(path), size)
        dataset = self.volume_dataset(vm_name, volume)
        command = argv.create_volume(tools, dataset, size, sparse=self.options.sparse,
                                     volblocksize=self.options.volblocksize)
        try:
            self.host.run(command)
        except Conflict:
            raise Conflict(f"disk {volume} of VM {vm_name} already exists ({dataset})") from None
        device = argv.zvol_device(tools, dataset)
        try:
            self.wait_for_device(device)
        except BaseException:
            self.host.run(argv.destroy(tools, dataset))  # nothing half-created
            raise
        return Volume(volume, Path(device), size, device=True)

    def wait_for_device(self, device: str, timeout: float = DEVICE_WAIT) -> None:
        """Wait until the zvol's device node exists (OpenZFS creates it asynchronously).

        :raises BhypeError: it did not appear within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            for command in argv.settle_devices(self.host.tools):
                self.host.probe(command)
            if self.host.has_path(device):
                return
            if time.monotonic() > deadline:
                raise BhypeError(f"zvol device {device} did not appear within {timeout:g}s")
            time.sleep(0.2)

    def grow_volume(self, vm_name: str, volume: str, size: int) -> Volume:
        _check_size(size)
        current = self.volume(vm_name, volume)
        if size < current.size:
            raise ValidationErrors([("size", f"disk {volume} is {human_size(current.size)}; shrinking to "
                                             f"{human_size(size)} would destroy data and is refused")])
        if size == current.size:
            return current
        tools = self.host.tools
        if self.options.disk_type == "file":
            self.host.run(argv.create_file(tools, str(current.path), size))
        else:
            # zfsprops(7): a non-sparse volume's refreservation grows with volsize by itself.
            self.host.run(argv.set_properties(tools, self.volume_dataset(vm_name, volume), {"volsize": str(size)}))
        return Volume(volume, current.path, size, device=current.device)

    def delete_volume(self, vm_name: str, volume: str) -> None:
        """Delete a disk (a zvol with its snapshots).

        :raises NotFound: it does not exist.
        :raises Conflict: a clone depends on one of its snapshots, or one is held.
        """
        current = self.volume(vm_name, volume)
        if self.options.disk_type == "file":
            self.host.run(["rm", "-f", "--", str(current.path)])
            return
        dataset = self.volume_dataset(vm_name, volume)
        refuse_if_dependents(self.host, dataset, f"disk {volume} of VM {vm_name}")
        self.host.run(argv.destroy(self.host.tools, dataset, recursive=True))

    def volume(self, vm_name: str, volume: str) -> Volume:
        tools = self.host.tools
        if self.options.disk_type == "file":
            path = self._file(vm_name, volume)
            result = self.host.probe(argv.file_size(tools, path))
            if result.returncode != 0:
                raise NotFound(f"disk {volume} of VM {vm_name} does not exist ({path})")
            return Volume(volume, Path(path), int(result.stdout.strip()))
        dataset = self.volume_dataset(vm_name, volume)
        try:
            text = self.host.text(argv.get_properties(tools, ["volsize"], [dataset]))
        except NotFound:
            raise NotFound(f"disk {volume} of VM {vm_name} does not exist ({dataset})") from None
        except BhypeError as exc:
            if not refused(exc):
                raise
            return Volume(volume, Path(argv.zvol_device(tools, dataset)), 0, device=True)  # size unknown here
        value = parse_zfs_get(text).get(dataset, {}).get("volsize")
        if value is None or value.value is None:
            raise Conflict(f"{dataset} is not a volume (no volsize)")
        return Volume(volume, Path(argv.zvol_device(tools, dataset)), int(value.value), device=True)

    def copy_volume(
        self, src_vm: str, volume: str, dst_vm: str, dst_volume: str, progress: ProgressCallback | None = None
    ) -> Volume:
        """An independent copy of a disk: ``zfs send | zfs receive`` of a temporary snapshot
        (zvols), ``cp`` (files). The temporary snapshots are destroyed afterwards."""
        source = self.volume(src_vm, volume)
        if self.options.disk_type == "file":
            target = self._file(dst_vm, dst_volume)
            if self.host.has_path(target):
                raise Conflict(f"disk {dst_volume} of VM {dst_vm} already exists ({target})")
            self.host.run(["cp", "--", str(source.path), target])
            return Volume(dst_volume, Path(target), source.size)
        src = self.volume_dataset(src_vm, volume)
        dst = self.volume_dataset(dst_vm, dst_volume)
        snap = f"bhype-copy-{secrets.token_hex(4)}"
        self.host.run(argv.snapshot(self.host.tools, [f"{src}@{snap}"]))
        try:
            copy_dataset(self.host, f"{src}@{snap}", dst, progress, timeout=self.copy_timeout)
        finally:
            self.host.run(argv.destroy_snapshots(self.host.tools, src, [snap]))
        self.wait_for_device(argv.zvol_device(self.host.tools, dst))
        return Volume(dst_volume, Path(argv.zvol_device(self.host.tools, dst)), source.size, device=True)

    # ---------------------------------------------------------------------------------------
    # ISOs

    def iso_path(self, iso: str) -> Path:
        from bhype_core.plugin_api import ISO_RE

        if not isinstance(iso, str) or not ISO_RE.match(iso):
            raise ValidationErrors([("cdrom", f"{iso!r} is not an ISO file name")])
        return self.mountpoint(f"{self.dataset}/isos") / iso

    def isos(self) -> list[str]:
        """ISO file names in ``<root>/isos`` (``ls -1``), sorted; ``None`` (not checked) in the
        API process, which runs no host command."""
        from bhype_core.plugin_api import ISO_RE

        folder = self.mountpoint(f"{self.dataset}/isos")
        try:
            result = self.host.probe(["ls", "-1", str(folder)])
        except BhypeError as exc:
            if not refused(exc):
                raise
            return None  # type: ignore[return-value]  # unknown in the API process: the task checks
        return sorted(n for n in result.stdout.split("\n") if n and ISO_RE.match(n)) if result.returncode == 0 else []


def refused(exc: BaseException) -> bool:
    """Whether ``exc`` is the API process's refusal to run host commands (issue 3): paths are
    then computed without asking the host, and sizes are unknown (0)."""
    return getattr(exc, "code", "") == "host_command_refused"


def _check_size(size: object) -> None:
    if isinstance(size, bool) or not isinstance(size, int) or size <= 0:
        raise ValidationErrors([("size", f"must be a positive number of bytes, not {size!r}")])


def zfs_backend(runtime: Any, options: Mapping[str, Any]) -> ZfsStorage:
    """Open a ZFS datastore (``[vm.datastores.<name>] backend = "zfs"``).

    :raises ConfigError: bad options, or no dataset given and no ``zfs.pool`` configured.
    """
    name = str(options.get("name", "zfs"))
    try:
        parsed = ZfsDatastoreOptions.model_validate(dict(options))
    except (ValidationError, ValueError) as exc:
        raise ConfigError(f"vm.datastores.{name}: {exc}") from None
    settings = zfs_settings(runtime)
    dataset = parsed.dataset or settings.root_dataset
    if not dataset:
        raise ConfigError(f"vm.datastores.{name}.dataset: empty, and no zfs.pool is configured")
    try:
        check_dataset(dataset)
    except ValidationErrors as exc:
        raise ConfigError(f"vm.datastores.{name}.dataset: {exc.message}") from None
    return ZfsStorage(zfs_host(runtime), dataset, parsed, settings.copy_timeout)
