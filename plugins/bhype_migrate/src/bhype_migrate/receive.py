"""The target side of a move: ``migrate.receive`` checks the files a peer sent, puts them in
place and registers the VM (keeping its UUID and MACs); ``migrate.discard`` removes what a
failed or rolled-back move left here. Both run on the receiving host's worker, queued by the
moving host through this host's API with an admin token."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from typing import Any

from bhype_core.plugin_api import (
    BLOCK_MANIFEST_DIR,
    BhypeError,
    TaskContext,
    UndoAction,
    ValidationErrors,
    adopt_vm,
    find_vm,
    is_running,
    local_host_name,
    register_vm,
    unregister_vm,
)
from bhype_migrate.checksums import checksum_tree, mismatches, regular_files
from bhype_migrate.facts import INCOMING_PREFIX, datastore_root

INCOMING_RE = re.compile(rf"^{re.escape(INCOMING_PREFIX)}[0-9a-f-]{{36}}$")
UNRECEIVE = "migrate.unreceive"


def incoming_dir(runtime: Any, datastore: str, incoming: str) -> Path:
    """The incoming directory ``incoming`` (a bare ``.bhype-incoming-<uuid>`` name) of a
    directory datastore, confined to its root."""
    if not isinstance(incoming, str) or not INCOMING_RE.match(incoming):
        raise ValidationErrors([("incoming", f"{incoming!r} is not an incoming directory name")])
    root = datastore_root(runtime, datastore)
    if root is None:
        raise ValidationErrors([("datastore", f"datastore {datastore!r} is not directory storage")])
    return root / incoming


def _vm_dir(runtime: Any, datastore: str, name: str) -> Path:
    from bhype_core.plugin_api import open_datastore

    return Path(open_datastore(runtime, datastore).vm_dir(name))


def receive(context: TaskContext, incoming: str, datastore: str, spec: dict[str, Any], owner: str,
            checksums: dict[str, str], give_back: dict[str, str] | None = None, snapshot: str = "",
            guid: str = "") -> dict[str, Any]:
    """Verify the files in ``incoming`` against ``checksums`` (every file, nothing extra),
    move them into VM ``spec['name']``'s directory and register it with ``spec`` (its UUID and
    MACs kept). Any failure puts the files back in ``incoming`` and registers nothing.

    ``give_back`` (a move from another host of this group, ``{host, datastore}`` of the
    source): the VM keeps its one record, which this host takes over (:func:`adopt_vm`)
    instead of registering a new one; an undo gives it back there.

    With ``snapshot`` (``--transport zfs``, between peers) the VM's dataset tree arrived by
    ``zfs receive`` instead: see :func:`receive_dataset`."""
    if snapshot:
        return receive_dataset(context, incoming, datastore, spec, owner, snapshot, guid, give_back)
    runtime = context.runtime
    source = incoming_dir(runtime, datastore, incoming)
    if not source.is_dir() or source.is_symlink():
        raise BhypeError(f"nothing was received in {incoming}")
    files = regular_files(source)
    total = sum((source / name).stat().st_blocks * 512 for name in files) or 1  # the digest reads data blocks only
    done = [0]

    def counted(count: int) -> None:
        done[0] += count
        context.progress(min(90.0, 90.0 * done[0] / total), "verifying checksums")

    problems = mismatches(checksums, checksum_tree(source, files, counted, expected=checksums))
    if problems:
        raise BhypeError(f"the received files do not match the source: {'; '.join(problems[:10])}")
    shutil.rmtree(source / BLOCK_MANIFEST_DIR, ignore_errors=True)  # a dirty-block move's hashes: verified
    context.log(f"checksums of {len(files)} file(s) verified")
    name = spec["name"]
    target = _vm_dir(runtime, datastore, name)
    if os.path.lexists(target):
        raise ValidationErrors([("name", f"the directory of a VM named {name!r} exists on this host already")])
    context.intent(UNRECEIVE, f"VM {name} received in {target}", datastore=datastore, incoming=incoming,
                   name=name, uuid=str(spec.get("uuid", "")), give_back=give_back)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.rename(source, target)
    try:
        if give_back is not None:
            ref = adopt_vm(context, name, str(spec.get("uuid", "")), datastore)
        else:
            ref = register_vm(context, datastore, spec, owner)
    except BaseException:
        os.rename(target, source)
        raise
    context.progress(100.0, "registered")
    return {"vm": ref.name, "uuid": str(ref.uuid), "files": len(files), "datastore": datastore}


def receive_dataset(context: TaskContext, incoming: str, datastore: str, spec: dict[str, Any], owner: str,
                    snapshot: str, guid: str, give_back: dict[str, str] | None = None) -> dict[str, Any]:
    """Register a VM whose dataset tree a peer sent with ``zfs send | zfs receive -u``: its last
    snapshot ``snapshot`` must be here with the sender's ``guid`` (zfsprops(7): a received
    snapshot keeps it), then the file system is mounted (zfs-mount(8); received unmounted, it
    holds the UEFI variables) and the VM registered (inside a group, ``give_back``: its one record
    taken over). The sending host destroys the copy on a rollback."""
    from bhype_core.plugin_api import ZfsEnd, open_datastore, zfs_guid

    name = spec["name"]
    name_of = getattr(open_datastore(context.runtime, datastore), "vm_dataset", None)
    if not callable(name_of):
        raise ValidationErrors([("datastore", f"datastore {datastore!r} is not ZFS storage")])
    end = ZfsEnd(context.runner, name_of(name))
    found = zfs_guid(end, snapshot)
    if not guid or found != guid:
        raise BhypeError(f"{end.dataset}@{snapshot} is not here with GUID {guid} (found {found}): not registered")
    context.intent(UNRECEIVE, f"VM {name} received as {end.dataset}", datastore=datastore, incoming=incoming,
                   name=name, uuid=str(spec.get("uuid", "")), dataset=True, give_back=give_back)
    context.runner.run(["zfs", "mount", end.dataset], check=False)  # already mounted (a resumed task) is fine
    mounted = context.runner.run(["zfs", "get", "-H", "-o", "value", "mounted", end.dataset]).stdout.strip()
    if mounted != "yes":
        raise BhypeError(f"{end.dataset} could not be mounted")
    if give_back is not None:
        ref = adopt_vm(context, name, str(spec.get("uuid", "")), datastore)
    else:
        ref = register_vm(context, datastore, spec, owner)
    context.progress(100.0, "registered")
    return {"vm": ref.name, "uuid": str(ref.uuid), "dataset": end.dataset, "snapshot": snapshot,
            "datastore": datastore}


def _remove_vm(context: TaskContext, datastore: str, name: str, uuid: str) -> str | None:
    """Remove VM ``name`` here if it is the one a move registered (same UUID): power it off
    first, then its record and its directory."""
    row = find_vm(context.runtime, name)
    if row is None or (uuid and str(row.uuid).lower() != uuid.lower()):
        return None
    if is_running(context.runtime, name):
        outcome = context.wait(context.submit("vm.force_stop", {"name": name}))[0]
        if not outcome.ok:
            raise BhypeError(f"could not power off VM {name} here: {outcome.error}")
    unregister_vm(context, name)
    _remove_files(context, datastore, name)
    return f"VM {name} ({uuid}) removed"


def _remove_files(context: TaskContext, datastore: str, name: str) -> None:
    """Remove the VM directory a move put here. A received dataset (``--transport zfs``) is on
    the host the runner reaches, not necessarily this machine: the datastore destroys it
    (``zfs destroy -r``, with its snapshots)."""
    if datastore_root(context.runtime, datastore) is None:
        from bhype_core.plugin_api import open_datastore

        open_datastore(context.runtime, datastore).remove_vm_dir(name)
    else:
        shutil.rmtree(_vm_dir(context.runtime, datastore, name), ignore_errors=True)


def _give_back(context: TaskContext, datastore: str, name: str, uuid: str, give_back: dict[str, str]) -> str | None:
    """A group move's undo here: power the VM off if it runs here, hand its one record back to
    the source host (``give_back``), remove the files this host got."""
    row = find_vm(context.runtime, name)
    if row is None or str(row.uuid).lower() != uuid.lower() or row.host != local_host_name(context.runtime):
        return None  # not (or no longer) ours: the source still has it
    if is_running(context.runtime, name):
        outcome = context.wait(context.submit("vm.force_stop", {"name": name}))[0]
        if not outcome.ok:
            raise BhypeError(f"could not power off VM {name} here: {outcome.error}")
    adopt_vm(context, name, uuid, give_back["datastore"], host=give_back["host"])
    _remove_files(context, datastore, name)
    return f"VM {name} ({uuid}) given back to host {give_back['host']}; its files here removed"


def discard(context: TaskContext, datastore: str, incoming: str, name: str = "", uuid: str = "",
            give_back: dict[str, str] | None = None) -> dict[str, Any]:
    """Remove what a move left here: the incoming files and, when ``name`` and ``uuid`` are
    given, the VM a move registered (powered off first) or, inside a group (``give_back``),
    took over (its record goes back to the source host). Absent things are fine."""
    removed = []
    if name and give_back is not None:
        said = _give_back(context, datastore, name, uuid, give_back)
        if said:
            removed.append(said)
    elif name:
        said = _remove_vm(context, datastore, name, uuid)
        if said:
            removed.append(said)
    if datastore and datastore_root(context.runtime, datastore) is None:
        # A ZFS datastore (--transport zfs) has no incoming directory: the sending host
        # destroys the received dataset itself once this VM is gone.
        for line in removed:
            context.log(f"removed {line}")
        return {"removed": removed}
    path = incoming_dir(context.runtime, datastore, incoming)
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
        removed.append(f"incoming files {incoming}")
    for line in removed:
        context.log(f"removed {line}")
    return {"removed": removed}


def unreceive(context: TaskContext, datastore: str, incoming: str, name: str, uuid: str,
              give_back: dict[str, str] | None = None, dataset: bool = False) -> str:
    """Undo of an interrupted ``migrate.receive``: unregister the VM (same UUID; inside a group:
    give its record back to the source host) and put its files back in ``incoming`` (the moving
    host then discards or retries). A received dataset (``dataset``) stays where it is: the
    moving host destroys it when it rolls back."""
    row = find_vm(context.runtime, name)
    if row is not None and str(row.uuid).lower() == uuid.lower():
        if give_back is not None:
            if row.host == local_host_name(context.runtime):
                adopt_vm(context, name, uuid, give_back["datastore"], host=give_back["host"])
        else:
            unregister_vm(context, name)
    if dataset:
        return f"VM {name} not registered; its received dataset is left for the sending host's rollback"
    target = _vm_dir(context.runtime, datastore, name)
    source = incoming_dir(context.runtime, datastore, incoming)
    if target.is_dir() and not source.exists() and (row is None or str(row.uuid).lower() == uuid.lower()):
        os.rename(target, source)
    return f"VM {name} not registered; its files are back in {incoming}"


UNDO_ACTIONS = [UndoAction(name=UNRECEIVE, run=unreceive,
                           description="unregister a half-received VM and put its files back")]


def check(context: TaskContext, spec: dict[str, Any], datastore: str | None = None, size: int = 0,
          within_group: bool = False, transport: str = "rsync") -> dict[str, Any]:
    """``migrate.check``: whether a VM fits on this host (the group's version of a peer's
    ``POST /api/v1/migrate/check``, queued here by the moving host); changes nothing."""
    from bhype_migrate.facts import check_fit

    return check_fit(context.runtime, spec, datastore, size, within_group, transport)
