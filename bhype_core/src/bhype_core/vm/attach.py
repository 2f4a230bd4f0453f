"""Resolving a VM's storage into the host paths a driver needs (:class:`Attachments`)."""

from __future__ import annotations

from typing import Any

from bhype_core.drivers.base import Attachments
from bhype_core.errors import NotFound
from bhype_core.spec import VMSpec


def attachments(store: Any, spec: VMSpec, *, planned: bool = False) -> Attachments:
    """Disk and ISO paths of ``spec`` in ``store``.

    :param planned: for a plan (show-command) of a VM whose disks may not exist on this host:
        an absent disk is shown at the path it would have instead of raising.
    :raises NotFound: a disk is missing (unless ``planned``); the driver's preflight reports a
        missing ISO itself, with how to fix it.
    """
    disks = []
    for disk in spec.disks:
        volume = disk.volume or ""
        try:
            disks.append(str(store.volume(spec.name, volume).path))
        except NotFound:
            if not planned:
                raise
            disks.append(str(store.volume_path(spec.name, volume)))
    cdrom = str(store.iso_path(spec.cdrom)) if spec.cdrom is not None else None
    return Attachments(disk_paths=disks, cdrom_path=cdrom)
