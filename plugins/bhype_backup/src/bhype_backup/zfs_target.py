"""A ZFS backup target as the worker reaches it: ``zfs`` commands over SSH, manifests, holds.

The target ``zfs://USER@HOST[:PORT]/POOL/ROOT`` is reached with ``ssh -i KEY`` and the host key
pinned at ``target add``. That ssh client runs on the worker's own machine
(``runtime.local_runner``), where the key and known_hosts files are, even when ``[runner]``
drives the datastore's host over SSH.

Layout below ``ROOT`` (each VM's *chain*: the datasets incremental sends go to)::

    ROOT/<vm uuid>                 the VM's dataset (NVRAM, cloud-init seed, file disks)
    ROOT/<vm uuid>/<disk>          each zvol disk
    ROOT/<vm uuid>-<point id>      a new chain after a broken one (full send; the old stays)
    <mountpoint of ROOT>/.bhype-manifests/<chain>/<snapshot>.json   each point's manifest

A point is the snapshot ``<chain>@bhype-backup-…`` of every dataset of the chain, held with
tag ``bhype-backup`` (zfs-hold(8)) until retention or ``backup delete`` releases it. The
manifest is written with ``dd`` to a temporary name and renamed (mv(1): rename(2) is atomic),
last, so a point without its manifest is never listed. Received datasets stay unmounted
(``zfs receive -u``), so nothing on the target changes them between incremental receives.
"""

from __future__ import annotations

import time
from typing import Any

from bhype_backup import zfs_argv
from bhype_backup.endpoint import Endpoint
from bhype_core.plugin_api import BhypeError, NotFound, ValidationErrors

MANIFEST_DIR = ".bhype-manifests"


class ZfsTarget:
    """One ZFS target: commands run there over the pinned SSH connection."""

    def __init__(self, runtime: Any, target: Any) -> None:
        self.runtime = runtime
        self.endpoint = Endpoint(runtime, target, runtime.local_runner)
        if self.endpoint.dest.kind != "zfs":
            raise ValidationErrors([("target", f"target {target.name} is not a ZFS target")])
        self.name = target.name
        self.root = zfs_argv.check_dataset(self.endpoint.dest.path)
        self.runner = runtime.local_runner

    # -- commands --------------------------------------------------------------------------
    def argv(self, argv: list[str]) -> list[str]:
        """``ssh … USER@HOST -- 'argv'``: what runs ``argv`` on the target."""
        return self.endpoint.ssh_argv(argv)

    def run(self, argv: list[str], *, check: bool = True, timeout: float = 300, input: Any = None) -> Any:
        return self.runner.run(self.argv(argv), check=check, timeout=timeout, input=input)

    def pipe(self, producer: list[str], consumer: list[str], **options: Any) -> Any:
        """``producer`` on the target | ``consumer`` (on ``to=``, default this machine): the
        runner's ``pipe`` with the producer through ssh (so the core's ``zvol_to_image`` can
        read a snapshot here, with this object as its runner)."""
        return self.runner.pipe(self.argv(producer), consumer, **options)

    def dataset(self, relative: str = "") -> str:
        """``ROOT/relative`` (``relative`` may carry ``@snapshot``)."""
        return f"{self.root}/{relative}" if relative else self.root

    def exists(self, dataset: str) -> bool:
        result = self.run(["zfs", "list", "-H", "-o", "name", zfs_argv.check_dataset(dataset)], check=False)
        return result.returncode == 0

    def snapshots(self, dataset: str) -> list[tuple[str, str]]:
        """``(name, guid)`` of ``dataset``'s snapshots, oldest first; ``[]`` when it does not exist."""
        result = self.run(zfs_argv.list_snapshots(dataset), check=False)
        if result.returncode != 0:
            if "does not exist" in result.stderr:
                return []
            raise BhypeError(f"target {self.name}: zfs list {dataset} failed: {result.stderr.strip()[-300:]}")
        return zfs_argv.parse_snapshots(result.stdout)

    def prepare(self) -> str:
        """Make sure ROOT exists and is mounted; its mountpoint (where manifests go)."""
        self.run(zfs_argv.create_parents(self.root))
        mounted, mountpoint = self.run(zfs_argv.get_values(["mounted", "mountpoint"], self.root)).stdout.split()[:2]
        if mounted != "yes" or not mountpoint.startswith("/"):
            raise BhypeError(f"target {self.name}: {self.root} is not mounted ({mountpoint}); bHype keeps the "
                             "manifests in it: mount it (zfs mount) or set a mountpoint")
        return mountpoint

    def wait_no_partial(self, dataset: str, timeout: float = 60.0) -> None:
        """After a cut stream, until ZFS has discarded the partial receive (a ``%recv`` clone,
        zfs-receive(8)): the remote ``zfs receive`` notices the closed stream a moment later."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = self.run(["zfs", "list", "-H", "-o", "name", "-r", "-t", "all", zfs_argv.check_dataset(dataset)],
                              check=False)
            if result.returncode != 0 or "%" not in result.stdout:
                return
            time.sleep(0.5)

    # -- manifests -------------------------------------------------------------------------
    def manifest_path(self, mountpoint: str, point_path: str) -> str:
        chain, _, snapshot = point_path.partition("@")
        return f"{mountpoint}/{MANIFEST_DIR}/{chain}/{snapshot}.json"

    def write_manifest(self, point_path: str, data: bytes) -> None:
        """Write the manifest under a temporary name, then rename it into place (atomic)."""
        final = self.manifest_path(self.prepare(), point_path)
        partial = final + ".partial"
        self.run(["mkdir", "-p", "--", final.rsplit("/", 1)[0]])
        self.run(["dd", f"of={partial}", "bs=65536"], input=data)
        self.run(["mv", "-f", "--", partial, final])

    def read_manifest(self, point_path: str, limit: int = 64 * 2**20) -> bytes:
        """The manifest's bytes (decoded by the runner as UTF-8 text: manifests are JSON)."""
        path = self.manifest_path(self.prepare(), point_path)
        result = self.run(["cat", "--", path], check=False)
        if result.returncode != 0:
            raise NotFound(f"the manifest of {point_path} cannot be read from target {self.name}: "
                           f"{result.stderr.strip()[-200:]}")
        data = result.stdout.encode()
        if len(data) > limit:
            raise NotFound(f"the manifest of {point_path} on target {self.name} is larger than {limit} bytes")
        return data

    # -- points ----------------------------------------------------------------------------
    def hold(self, point_path: str) -> None:
        """``zfs hold -r bhype-backup CHAIN@SNAP``: retention elsewhere cannot break the chain."""
        self.run(zfs_argv.hold(self.dataset(point_path)))

    def held(self, point_path: str) -> list[tuple[str, str]]:
        return zfs_argv.parse_holds(self.run(zfs_argv.holds(self.dataset(point_path))).stdout)

    def delete_point(self, point_path: str) -> None:
        """Release the point's hold, destroy its snapshots and manifest; a chain left without
        snapshots is destroyed too. Absent is fine."""
        chain, _, snapshot = point_path.partition("@")
        if not chain or not snapshot or "/" in snapshot:
            return  # a row that never got as far as a snapshot: nothing on the target
        zfs_argv.check_snapshot(self.dataset(point_path))
        full = self.dataset(point_path)
        if any(name == snapshot for name, _ in self.snapshots(self.dataset(chain))):
            self.run(zfs_argv.release(full), check=False)  # absent hold (never held, released) is fine
            self.run(zfs_argv.destroy_snapshot(full))
        try:
            mountpoint = self.prepare()
            self.run(["rm", "-f", "--", self.manifest_path(mountpoint, point_path)], check=False)
        except BhypeError:
            pass  # the manifest directory is on ROOT: unmounted now, the file is unreachable anyway
        if self.exists(self.dataset(chain)) and not self.snapshots(self.dataset(chain)):
            self.run(zfs_argv.destroy_dataset(self.dataset(chain)))
