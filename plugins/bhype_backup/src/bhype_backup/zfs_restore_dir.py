"""A point on a ZFS target restored as a new VM onto *directory* storage.

Each zvol disk is copied block by block from the point's snapshot on the target into a sparse
image file in the new VM's directory with the core's ``zvol_to_image`` (a temporary clone of
the snapshot read with ``dd`` over the pinned SSH connection, written by ``dd conv=sparse`` on
the worker's host, through the runner's ``pipe``: never a shell string; dd(1), zfs-clone(8)).
Each file of the VM's dataset (cloud-init seed, NVRAM, image-file disks) is read from a
read-only clone of the dataset (``zfs_read.PointReader.files``) the same way (``dd``, its exact
size given back by truncate(1)). Every image and file is hashed and compared with the manifest
before the VM is registered; any failure removes the new VM's directory again.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from bhype_backup.manifest import FileEntry, Manifest
from bhype_backup.restore import RestoreMismatch, _new_spec
from bhype_backup.zfs_read import PointReader
from bhype_backup.zfs_target import ZfsTarget
from bhype_core.plugin_api import TransferFailed, register_vm, zvol_to_image

BLOCK = 1024 * 1024


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(BLOCK):
            digest.update(chunk)
    return digest.hexdigest()


def _checked(path: Path, entry: FileEntry) -> None:
    found = _digest(path)
    if found != entry.sha256:
        raise RestoreMismatch(f"{entry.original}: sha256 {found} differs from the manifest's {entry.sha256}")


def _copy_file(context: Any, remote: ZfsTarget, source: str, image: Path, size: int) -> None:
    """``dd if=SOURCE`` on the target | ``dd of=IMAGE conv=sparse`` here, then its exact size."""
    local = context.runtime.local_runner
    result = remote.pipe(["dd", f"if={source}", f"bs={BLOCK}"], ["dd", f"of={image}", f"bs={BLOCK}", "conv=sparse"],
                         to=local, check=False, cancel=context.cancel_requested, timeout=7 * 24 * 3600)
    if not result.ok:
        error = result.error()
        raise TransferFailed(error.argv, error.returncode, error.stderr, error.duration,
                             reason=f"copying {source} from target {remote.name} failed (exit {error.returncode})")
    local.run(["truncate", "-s", str(int(size)), "--", str(image)])  # truncate(1): trailing holes


def restore_to_directory(context: Any, row: Any, remote: ZfsTarget, manifest: Manifest, store: Any,
                         store_name: str, name: str, owner: str) -> dict[str, Any]:
    """Point ``row`` as new VM ``name`` in directory datastore ``store``."""
    reader = PointReader(remote, row.path)
    local = context.runtime.local_runner
    restored: list[str] = []
    store.create_vm_dir(name)
    try:
        disks = [e for e in manifest.files if e.role == "disk"]
        for index, entry in enumerate(disks):
            context.check_cancelled()
            context.progress(5 + 80 * index / max(len(disks), 1), f"disk {entry.volume}")
            volume = entry.volume or Path(entry.original).stem
            image = Path(store.volume_path(name, volume))
            if entry.stored.startswith("files/"):
                with reader.files() as mountpoint:
                    _copy_file(context, remote, f"{mountpoint}/{entry.original}", image, entry.size)
            else:
                copy = zvol_to_image(remote, remote.dataset(f"{reader.chain}/{entry.stored}@{reader.snapshot}"),
                                     str(image), entry.size, to=local, cancel=context.cancel_requested,
                                     timeout=7 * 24 * 3600)
                context.log(f"disk {volume}: {copy.size} bytes, {copy.allocated} allocated")
            _checked(image, entry)
            restored.append(volume)
        configs = [e for e in manifest.files if e.role == "config" and e.stored.startswith("files/")]
        if configs:
            with reader.files() as mountpoint:
                for entry in configs:
                    partial = store.vm_dir(name) / f".{entry.original}.restore"
                    _copy_file(context, remote, f"{mountpoint}/{entry.original}", partial, entry.size)
                    _checked(partial, entry)
                    store.install_vm_file(name, partial, entry.original, mode=int(entry.mode, 8))
                    partial.unlink()
                    restored.append(entry.original)
        ref = register_vm(context, store_name, _new_spec(manifest, name), owner)
    except BaseException:
        store.remove_vm_dir(name)
        context.log(f"restore failed: the new VM {name} was removed again", "error")
        raise
    context.log(f"restored point {row.id} as VM {name} ({ref.uuid}) in directory datastore {store_name}, "
                "every disk and file checked against the manifest")
    context.progress(100, f"restored as {name}")
    return {"point": row.id, "vm": name, "uuid": ref.uuid, "datastore": store_name, "restored": restored,
            "new_vm": True}
