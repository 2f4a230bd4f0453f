"""The warm data path of a move whose hypervisor tracks dirty blocks (driver capability
``DIRTY_TRACKING``: QEMU, not bhyve) on directory storage: instead of rsync re-reading every
disk on both hosts in each pass, only the blocks the guest wrote since the previous pass are
copied (:func:`bhype_core.plugin_api.copy_blocks`), each checked by its SHA-256 read back on
the peer, and the offline window's checksums come from the per-block hashes both sides kept
(``blocks-sha256:``) instead of re-reading whole disks.

Passes: tracking starts → the VM's other files by rsync (disks left out) and every data block
of each disk → passes of the blocks written meanwhile, until a pass is smaller than
``warm_delta`` → the VM is stopped (``vm.stop``) while the tracker reads the last blocks written
before QEMU ends → those blocks and the other files once more → checksums → ``migrate.receive``
on the peer. When the tracker loses track (the guest rebooted: a new QEMU) the next pass sends
every block again; when the last blocks could not be read (a forced stop) the final pass sends
every block too: slower, never wrong.

Used when :func:`dirty_path` finds it applies (a warm move of a running VM, the move's
``dirty_tracking`` option and ``[migrate] dirty_tracking`` on); else the rsync passes run.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from bhype_core.plugin_api import (
    BLOCK_MANIFEST_DIR,
    BlockMap,
    DriverCapability,
    TrackingLost,
    VMSpec,
    active_driver,
    copy_blocks,
    covering_blocks,
    find_vm,
    is_running,
    open_datastore,
    path_arg,
    rsync_argv,
    run_rsync,
    ssh_wrap,
    task_progress,
)
from bhype_migrate import journal
from bhype_migrate.checksums import checksum_tree, regular_files
from bhype_migrate.transfer import IO_TIMEOUT


def dirty_path(move: Any) -> DirtyWarm | None:
    """The dirty-block data path for ``move`` (a :class:`bhype_migrate.move.Move`), or ``None``
    when the rsync passes apply: not a warm move of a running VM, tracking switched off, a
    driver without ``DIRTY_TRACKING``, or a disk outside the VM's directory."""
    data = move.data
    if data["mode"] != "warm" or not data.get("dirty_tracking", True) or not move.settings.dirty_tracking:
        return None
    driver = active_driver(move.runtime)
    if DriverCapability.DIRTY_TRACKING not in driver.capabilities or not is_running(move.runtime, data["vm"]):
        return None
    row = find_vm(move.runtime, data["vm"])
    if row is None:
        return None
    spec = VMSpec.model_validate(row.spec)
    store = open_datastore(move.runtime, row.datastore)
    root = Path(data["source_dir"]).resolve()
    disks = []
    for disk in spec.disks:
        path = Path(store.volume(spec.name, disk.volume or "").path)
        if path.parent.resolve() != root or not path.is_file() or path.is_symlink():
            return None
        disks.append(str(path))
    if not disks:
        return None
    return DirtyWarm(move, driver, spec, Path(store.vm_dir(spec.name)), disks)


class DirtyWarm:
    """One move's dirty-block passes (module docstring)."""

    def __init__(self, move: Any, driver: Any, spec: VMSpec, vm_dir: Path, disks: list[str]) -> None:
        self.move, self.driver, self.spec, self.vm_dir, self.disks = move, driver, spec, vm_dir, disks
        self.context = move.context
        self.maps = {disk: BlockMap(size=Path(disk).stat().st_size) for disk in disks}
        self.target_dir = f"{move.data['target_root']}/{move.data['incoming']}"
        self.started = False  # the first pass made the incoming directory

    def names(self) -> list[str]:
        return [Path(disk).name for disk in self.disks]

    # -- one pass --------------------------------------------------------------------------
    def files(self, label: str, low: float, high: float) -> int:
        """rsync of the VM's directory with the disks left out (they go block by block)."""
        extra = ["--mkpath", "--no-specials", "--no-devices", "--delete",
                 *(f"--exclude=/{name}" for name in self.names()), f"--exclude=/{BLOCK_MANIFEST_DIR}/"]
        argv = rsync_argv([path_arg(self.move.data["source_dir"], contents=True)],
                          self.move.peer.remote(path_arg(self.target_dir, contents=True)),
                          ssh=self.move.peer.transport, delta=True, inplace=True, sparse=True,
                          io_timeout=IO_TIMEOUT, extra=extra)
        stats = run_rsync(self.context.runner, argv, on_progress=task_progress(self.context, label, start=low,
                                                                                  span=high - low),
                          cancel=self.context.cancel_requested, timeout=24 * 3600)
        return stats.bytes_sent

    def disk_blocks(self, plan: dict[str, list[int] | None]) -> int:
        """Copy per disk the planned blocks; the bytes of changed blocks sent."""
        changed = 0
        for disk, blocks in plan.items():
            if blocks is not None and not blocks:
                continue
            target = f"{self.target_dir}/{Path(disk).name}"
            copied = copy_blocks(self.context.runner, disk, target, blocks, self.maps[disk],
                                 wrap=ssh_wrap(self.move.peer.ssh), python=self.move.settings.remote_python,
                                 cancel=self.context.cancel_requested)
            changed += copied.sent
        return changed

    def blocks(self, label: str, plan: dict[str, list[int] | None], low: float, high: float) -> int:
        """Copy per disk the planned blocks (``None``: every data block, a first copy) and the
        other files, and record the pass like an rsync pass (``passes`` in the result). After
        the first pass (whose rsync makes the incoming directory) the blocks go in a thread
        beside the rsync: two SSH sessions at once, a shorter final pass."""
        self.context.check_cancelled()
        started = time.monotonic()
        if not self.started:
            sent = self.files(label, low, low + (high - low) / 10)
            changed = self.disk_blocks(plan)
            self.started = True
        else:
            with ThreadPoolExecutor(max_workers=1, thread_name_prefix="bhype-blocks") as pool:
                future = pool.submit(self.disk_blocks, plan)
                try:
                    sent = self.files(label, low, low + (high - low) / 10)
                finally:
                    changed = future.result()  # its error first: rsync's is raised after it
        sent += changed
        self.context.progress(high, f"{label}: {changed} bytes of changed blocks")
        self.move.data["bytes_sent"] = self.move.data.get("bytes_sent", 0) + sent
        journal.set_state(self.move.runtime, self.context.task_id, "transferring",
                          bytes_sent=self.move.data["bytes_sent"])
        seconds = time.monotonic() - started
        self.context.log(f"{label}: {changed} bytes of changed blocks (dirty tracking), {sent} bytes sent "
                         f"in {seconds:.1f} s")
        self.move.data.setdefault("passes", []).append({"label": label, "changed": changed, "sent": sent,
                                                       "seconds": round(seconds, 3), "method": "dirty blocks"})
        return changed

    def every_block(self) -> dict[str, list[int] | None]:
        """Every block of every disk (a pass after tracking was lost: holes included, so a
        block the guest zeroed is zeroed there too)."""
        return {disk: list(range(0, m.size, m.block)) for disk, m in self.maps.items()}

    def dirty(self, extents: dict[str, list[tuple[int, int]]]) -> dict[str, list[int] | None]:
        return {disk: covering_blocks(extents.get(disk, []), self.maps[disk].block, self.maps[disk].size)
                for disk in self.disks}

    # -- the whole path ----------------------------------------------------------------------
    def run(self) -> dict[str, Any]:
        """Passes, stop, the last pass, checksums, ``migrate.receive`` on the peer."""
        settings, move = self.move.settings, self.move
        tracker = self.driver.track_dirty(self.spec, self.vm_dir, self.disks)
        try:
            tracker.start()
            self.context.log(f"tracking the writes to {len(self.disks)} disk(s): passes copy only changed blocks")
            self.blocks("warm pass 1 (VM running)", dict.fromkeys(self.disks), 0, 40)
            for attempt in range(2, settings.warm_passes + 1):
                try:
                    plan = self.dirty(tracker.changed())
                except TrackingLost as exc:
                    self.context.log(f"{exc.message}: this pass sends every block", "warning")
                    tracker.close()
                    tracker = self.driver.track_dirty(self.spec, self.vm_dir, self.disks)
                    tracker.start()
                    plan = self.every_block()
                if self.blocks(f"warm pass {attempt} (VM running)", plan, 40, 60) < settings.warm_delta:
                    break
            mark = time.monotonic()
            with tracker.stopping() as final:
                move.stop_source()
            move.timed("stop", mark)
            move.step("stopped", 60, f"VM {move.data['vm']} is stopped here")
            mark = time.monotonic()
            if final.extents is None:
                self.context.log(f"the last changed blocks are unknown ({final.detail or 'forced stop'}): "
                                 "the final pass sends every block", "warning")
                plan = self.every_block()
            else:
                plan = self.dirty(final.extents)
            self.blocks("final copy (VM stopped)", plan, 60, 80)
            move.timed("final copy", mark)
        finally:
            tracker.close()
        move.step("transferred", 80, "files copied")
        self.context.check_cancelled()
        mark = time.monotonic()
        received = move.receive(self.checksums())
        move.timed("checksums and register on the peer", mark)
        return received

    def checksums(self) -> dict[str, str]:
        """The other files' digests read now, the disks' from the kept per-block hashes."""
        root = Path(self.move.data["source_dir"])
        others = [name for name in regular_files(root) if name not in self.names()]
        sums = checksum_tree(root, others)
        sums.update({Path(disk).name: self.maps[disk].digest() for disk in self.disks})
        return sums
