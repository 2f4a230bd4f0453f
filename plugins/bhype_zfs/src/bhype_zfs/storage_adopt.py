"""Adopting an existing zvol in place (``zfs rename``) for the ZFS datastore (issue 21).

zfs-rename(8) moves a dataset inside its pool without touching its blocks: the vm-bhyve zvol
``tank/vm/web1/disk0`` becomes ``<root>/vms/web1/disk0`` and keeps its data, snapshots and
properties. A rename cannot cross pools ("cannot rename to different pool"): that case is
refused with what to do instead, never turned into a ``zfs send | zfs recv`` copy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bhype_core.plugin_api import Conflict, ValidationErrors, Volume
from bhype_zfs import argv
from bhype_zfs.parse import parse_zfs_get

ZVOL_PREFIX = "/dev/zvol/"


def zvol_dataset(source: str) -> str:
    """``tank/vm/web1/disk0`` from ``/dev/zvol/tank/vm/web1/disk0`` (or a dataset name as is).

    :raises ValidationErrors: not a zvol (path ``source``).
    """
    dataset = source[len(ZVOL_PREFIX):] if source.startswith(ZVOL_PREFIX) else source
    if source.startswith("/") and not source.startswith(ZVOL_PREFIX):
        raise ValidationErrors([("source", f"{source} is a file: a zvol datastore adopts zvols only "
                                           "(use a directory datastore for image files)")])
    return dataset


class ZfsAdopt:
    """Mixed into :class:`~bhype_zfs.storage.ZfsStorage` (supplies ``host``, ``dataset``,
    ``datastore``, ``options``, ``volume_dataset``, ``vm_dataset``, ``wait_for_device``)."""

    host: Any
    dataset: str
    datastore: str
    options: Any

    def adopt_volume(self, vm_name: str, volume: str, source: str) -> Volume:
        """``zfs rename <source zvol> <root>/vms/<vm>/<volume>`` after checking it is a volume
        of this datastore's pool; the VM's dataset must exist."""
        tools = self.host.tools
        old = zvol_dataset(source)
        new = self.volume_dataset(vm_name, volume)  # type: ignore[attr-defined]
        if old.split("/")[0] != self.dataset.split("/")[0]:
            raise ValidationErrors([("source", f"{old} is in pool {old.split('/')[0]}, datastore {self.datastore} "
                                               f"in pool {self.dataset.split('/')[0]}: zfs rename cannot cross "
                                               "pools, so it cannot be adopted without copying")])
        text = self.host.text(argv.get_properties(tools, ["type", "volsize"], [old]))
        props = parse_zfs_get(text).get(old, {})
        kind = props.get("type")
        if kind is None or kind.value != "volume":
            raise ValidationErrors([("source", f"{old} is not a ZFS volume")])
        if self.host.exists(new):
            raise Conflict(f"disk {volume} of VM {vm_name} already exists ({new})")
        self.host.run(argv.rename(tools, old, new))
        device = argv.zvol_device(tools, new)
        self.wait_for_device(device)  # type: ignore[attr-defined]
        size = props.get("volsize")
        return Volume(volume, Path(device), int(size.value) if size and size.value else 0, device=True)

    def release_volume(self, vm_name: str, volume: str, source: str) -> None:
        """Rename the zvol back to ``source``'s dataset; nothing to do when it is not here."""
        new = self.volume_dataset(vm_name, volume)  # type: ignore[attr-defined]
        if not self.host.exists(new):
            return
        self.host.run(argv.rename(self.host.tools, new, zvol_dataset(source)))
