"""``backup.restore`` of a point on a ZFS target: ``zfs send`` back, checked against the manifest.

The point's snapshots are sent back in full (``zfs send -c CHAIN/…@SNAP`` on the target, over
the pinned SSH connection, into ``zfs receive`` on the datastore's host; zfs-send(8),
zfs-receive(8)) onto a ZFS datastore (one that streams: ``export-stream``):

* **as a new VM**: the VM's dataset is received as the new VM's dataset (its files: NVRAM,
  cloud-init seed, file disks), each zvol below it (``-o volmode=dev``, as bHype creates them);
  then every disk's and file's sha256 is compared with the manifest before the VM is
  registered with a new name, UUID and MACs. Any failure destroys the new dataset.
* **onto the same, stopped VM** (``confirm``): each zvol is received next to the disk
  (``<disk>.bhype-restore``), checked, then renamed into place; the replaced disk is destroyed
  (its bHype holds released first; kept, with a warning, when something else still holds or
  clones it). The files come from the VM dataset received into a temporary child dataset,
  copied, checked and renamed over the VM's. A VM destroyed since is re-created with its
  name and UUID.

* **as a new VM onto directory storage**: zvols copied into sparse image files, files fetched
  and checked (``bhype_backup.zfs_restore_dir``).

The received snapshot is destroyed afterwards: the restored disks are new data to ZFS, so the
VM's next backup to that target starts a new chain (a full send, its note says so).
"""

from __future__ import annotations

import hashlib
from typing import Any

from bhype_backup import zfs_argv, zfs_source
from bhype_backup.manifest import FileEntry, Manifest, parse_manifest
from bhype_backup.restore import RestoreMismatch, _new_spec, restored_disks, same_vm_row
from bhype_backup.zfs_target import ZfsTarget
from bhype_core.plugin_api import (
    BhypeError,
    Conflict,
    NotFound,
    StorageCapability,
    ValidationErrors,
    find_vm,
    hook_errors,
    is_running,
    open_datastore,
    register_vm,
    send_receive,
    task_progress,
    vm_after,
    vm_before,
    vm_ref,
    vm_settings,
    zfs_send_argv,
)


def restore_zfs_point(context: Any, row: Any, target: Any, new_name: str | None, confirm: bool,
                      disk: str | None, datastore: str | None) -> dict[str, Any]:
    """Restore point ``row`` (on ZFS target ``target``) as ``new_name`` or onto its VM."""
    remote = ZfsTarget(context.runtime, target)
    data = remote.read_manifest(row.path)
    if hashlib.sha256(data).hexdigest() != row.manifest_sha256:
        raise RestoreMismatch(f"the manifest of point {row.id} on target {row.target} changed since it was written")
    manifest = parse_manifest(data)
    job = _Restore(context, row, remote, manifest)
    disks = restored_disks(manifest, row.id, disk, new_name)
    if new_name is not None:
        return job.as_new(new_name, datastore, keep_identity=False)
    return job.onto_same(disks, confirm, single=disk is not None)


class _Restore:
    def __init__(self, context: Any, row: Any, remote: ZfsTarget, manifest: Manifest) -> None:
        self.context, self.row, self.remote, self.manifest = context, row, remote, manifest
        self.runner = context.runtime.runner
        self.chain, _, self.snapshot = row.path.partition("@")

    def _store(self, name: str, *, directory: bool = False) -> Any:
        store = open_datastore(self.context.runtime, name)
        if StorageCapability.EXPORT_STREAM in store.capabilities:
            return store
        if directory and hasattr(store, "volume_path") and hasattr(store, "create_vm_dir"):
            return store  # a directory datastore: zvols become sparse image files (as a new VM)
        raise ValidationErrors([("datastore", f"point {self.row.id} is on ZFS target {self.row.target}: it "
                                              f"restores onto a ZFS datastore or as a new VM onto directory "
                                              f"storage, and {name} is neither")])

    def receive(self, relative: str, dataset: str, label: str, *, mount: bool = False,
                properties: dict[str, str] | None = None) -> None:
        """``zfs send CHAIN[/relative]@SNAP`` there | ``zfs receive DATASET`` here."""
        source = self.remote.dataset(f"{self.chain}/{relative}" if relative else self.chain)
        send = self.remote.argv(zfs_send_argv(f"{source}@{self.snapshot}"))
        self.context.log(f"zfs send {self.remote.name}:{source}@{self.snapshot} | zfs receive {dataset}")
        send_receive(self.remote.runner, send, zfs_argv.receive(dataset, mount=mount, properties=properties),
                     to=self.runner, on_progress=task_progress(self.context, label, start=5, span=80),
                     cancel=self.context.cancel_requested, timeout=7 * 24 * 3600)

    def check(self, path: str, entry: FileEntry) -> None:
        if not entry.stored.startswith("files/"):
            zfs_source.wait_for(self.runner, path)
        found = zfs_source.sha256(self.runner, path)
        if found != entry.sha256:
            raise RestoreMismatch(f"{entry.original}: sha256 {found} differs from the manifest's {entry.sha256}")

    def as_new(self, name: str, datastore: str | None, *, keep_identity: bool) -> dict[str, Any]:
        runtime, manifest = self.context.runtime, self.manifest
        if find_vm(runtime, name) is not None:
            raise ValidationErrors([("as", f"a VM named {name!r} exists")])
        store_name = datastore or manifest.vm.get("datastore") or vm_settings(runtime).default_datastore
        store = self._store(store_name, directory=not keep_identity)
        owner = str(manifest.vm.get("owner") if keep_identity else (self.context.user or manifest.vm.get("owner")))
        if StorageCapability.EXPORT_STREAM not in store.capabilities:
            from bhype_backup.zfs_restore_dir import restore_to_directory

            return restore_to_directory(self.context, self.row, self.remote, manifest, store, store_name, name, owner)
        dataset = store.vm_dataset(name)
        try:
            self.receive("", dataset, "vm dataset", mount=True)
            for entry in manifest.files:
                if entry.role == "disk" and not entry.stored.startswith("files/"):
                    self.receive(entry.stored, f"{dataset}/{entry.stored}", f"disk {entry.volume}",
                                 properties={"volmode": "dev"})
            self.runner.run(zfs_argv.destroy_snapshot(f"{dataset}@{self.snapshot}"), timeout=300)
            restored = []
            for entry in manifest.files:
                if entry.role in ("disk", "config"):
                    where = (f"{store.vm_dir(name)}/{entry.original}" if entry.stored.startswith("files/")
                             else f"/dev/zvol/{dataset}/{entry.stored}")
                    self.check(where, entry)
                    restored.append(entry.volume or entry.original)
            spec = ({k: v for k, v in manifest.spec.items() if k != "owner"} if keep_identity
                    else _new_spec(manifest, name))
            ref = register_vm(self.context, store_name, spec, owner)
        except BaseException:
            store.remove_vm_dir(name)
            self.context.log(f"restore failed: the new VM {name} ({dataset}) was removed again", "error")
            raise
        self.context.log(f"restored point {self.row.id} as VM {name} ({ref.uuid}) in datastore {store_name}, "
                         "every disk and file checked against the manifest")
        self.context.progress(100, f"restored as {name}")
        return {"point": self.row.id, "vm": name, "uuid": ref.uuid, "datastore": store_name, "restored": restored,
                "new_vm": not keep_identity, **({"recreated": True} if keep_identity else {})}

    def onto_same(self, disks: list[FileEntry], confirm: bool, single: bool) -> dict[str, Any]:
        runtime, manifest = self.context.runtime, self.manifest
        name = manifest.vm["name"]
        vm_row = same_vm_row(runtime, manifest, self.row.id, confirm)
        if vm_row is None:
            if single:
                raise NotFound(f"VM {name} does not exist any more: restore the whole point")
            return self.as_new(name, None, keep_identity=True)
        if is_running(runtime, name):
            raise Conflict(f"VM {name} is running: stop it before restoring onto it")
        ref = vm_ref(runtime, vm_row)
        source = f"point {self.row.id} on {self.row.target}"
        vm_before(runtime.pm, "restore", ref, self.context, source=source)
        store = self._store(vm_row.datastore)
        dataset = store.vm_dataset(name)
        restored = []
        for entry in disks:
            if entry.stored.startswith("files/"):
                continue  # an image file of a file datastore: with the files below
            restored.append(self._swap_zvol(dataset, entry))
        # Files of the VM's dataset: the config files (not for a single disk) and image disks.
        wanted = [e for e in self.manifest.files if e.stored.startswith("files/")
                  and ((e.role == "config" and not single) or e in disks)]
        restored += self._copy_files(store, name, dataset, wanted)
        self.context.log(f"restored point {self.row.id} onto VM {name}: {', '.join(restored)}")
        self.context.progress(100, f"restored onto {name}")
        failures = vm_after(runtime.pm, "restore", ref, self.context, source=source)
        return {"point": self.row.id, "vm": name, "uuid": vm_row.uuid, "restored": restored, "new_vm": False,
                **hook_errors(failures)}

    def _swap_zvol(self, dataset: str, entry: FileEntry) -> str:
        current = f"{dataset}/{entry.stored}"
        fresh, old = f"{current}.bhype-restore", f"{current}.bhype-old"
        for leftover in (fresh, old):  # an earlier restore cut off half-way
            if self.runner.run(["zfs", "list", "-H", "-o", "name", leftover], check=False).returncode == 0:
                self.runner.run(zfs_argv.destroy_dataset(leftover), timeout=300)
        try:
            self.receive(entry.stored, fresh, f"disk {entry.volume}", properties={"volmode": "dev"})
            self.runner.run(zfs_argv.destroy_snapshot(f"{fresh}@{self.snapshot}", recursive=False), timeout=300)
            self.check(f"/dev/zvol/{fresh}", entry)
        except BaseException:
            self.runner.run(zfs_argv.destroy_dataset(fresh), check=False, timeout=300)
            raise
        self.runner.run(zfs_argv.rename(current, old), timeout=300)
        self.runner.run(zfs_argv.rename(fresh, current), timeout=300)
        zfs_source.wait_for(self.runner, f"/dev/zvol/{current}")
        for snap, _ in zfs_source.snapshots(self.runner, old):  # the VM's backup bases, held by bHype
            held = self.runner.run(zfs_argv.holds(f"{old}@{snap}", recursive=False), check=False).stdout
            if (f"{old}@{snap}", zfs_argv.HOLD_TAG) in zfs_argv.parse_holds(held):
                self.runner.run(zfs_argv.release(f"{old}@{snap}", recursive=False), check=False)
        gone = self.runner.run(zfs_argv.destroy_dataset(old), check=False, timeout=300)
        if gone.returncode != 0:
            self.context.log(f"the replaced disk stays as {old} (something else holds or clones it): "
                             f"{gone.stderr.strip()[-200:]}", "warning")
        return entry.volume or entry.stored

    def _copy_files(self, store: Any, name: str, dataset: str, entries: list[FileEntry]) -> list[str]:
        if not entries:
            return []
        scratch = f"{dataset}/bhype-restore-files"
        if self.runner.run(["zfs", "list", "-H", "-o", "name", scratch], check=False).returncode == 0:
            self.runner.run(zfs_argv.destroy_dataset(scratch), timeout=300)
        vm_dir = str(store.vm_dir(name))
        done = []
        self.receive("", scratch, "files", mount=True)
        try:
            mountpoint = self.runner.run(zfs_argv.get_values(["mountpoint"], scratch)).stdout.strip()
            for entry in entries:
                partial = f"{vm_dir}/.{entry.original}.restore"
                self.runner.run(["cp", "--", f"{mountpoint}/{entry.original}", partial], timeout=24 * 3600)
                self.check(partial, entry)
                self.runner.run(["chmod", entry.mode, partial])
                self.runner.run(["mv", "-f", "--", partial, f"{vm_dir}/{entry.original}"])
                done.append(entry.original)
        finally:
            if self.runner.run(zfs_argv.destroy_dataset(scratch), check=False, timeout=300).returncode != 0:
                raise BhypeError(f"could not destroy the scratch dataset {scratch}")
        return done
