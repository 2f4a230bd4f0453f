"""Undo action for ``zfs.clone`` cut off by a crash of the worker (issue 11).

The clone task records its intent (``zfs.undo_clone``) just before the first change: the
target dataset tree and, when the task takes one, the temporary snapshot of the source.
Recovery then destroys the half-made tree (``zfs destroy -r``, never ``-R``: zfs-destroy(8)) and
the temporary snapshot. Conservative: nothing is destroyed when a VM record of the target's name
exists (the clone got registered: it is kept), and a snapshot some clone still depends on is
refused by ZFS itself and reported.
"""

from __future__ import annotations

from typing import Any

from bhype_core.plugin_api import UndoAction
from bhype_zfs import argv

UNDO_CLONE = "zfs.undo_clone"


def undo_clone(context: Any, datastore: str, name: str, dataset: str, source: str,
               snapshot: str | None = None) -> str | None:
    """Destroy the clone tree ``dataset`` of VM ``name`` and the temporary ``source@snapshot``."""
    from bhype_zfs.vms import datastore_of, find_vm_row

    if find_vm_row(context.runtime, name) is not None:
        context.log(f"clone {dataset} kept: a VM record named {name} owns it", level="warning")
        return None
    host = datastore_of(context.runtime, datastore).host
    removed = []
    if host.exists(dataset):
        host.run(argv.destroy(host.tools, dataset, recursive=True))
        removed.append(dataset)
    if snapshot and host.exists(f"{source}@{snapshot}"):
        host.run(argv.destroy_snapshots(host.tools, source, [snapshot], recursive=True))
        removed.append(f"{source}@{snapshot}")
    return f"clone leftovers {', '.join(removed)}" if removed else None


UNDO_ACTIONS = (UndoAction(UNDO_CLONE, undo_clone, "destroy what an interrupted zfs.clone made"),)
