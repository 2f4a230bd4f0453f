"""Snapshot mode on a datastore without snapshots: the driver's consistent point of a running VM.

QEMU holds every disk at one instant (QMP overlays, :meth:`HypervisorDriver.freeze_disks`)
while the guest keeps running; the backup reads the frozen files, then the driver merges the
guest's writes back (``thaw_disks``, also after a failure or a cancel). The small config files
(UEFI variables, the cloud-init seed) are copied to the staging directory while frozen, so the
manifest's checksums are of exactly what is sent. A stopped VM is copied as it is (its files
do not change: the backup holds the VM's lock).
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from bhype_core.plugin_api import active_driver


@contextmanager
def frozen_view(context: Any, ref: Any, store: Any, volumes: list[str], config: dict[str, Path],
                running: bool, staging: Path) -> Iterator[Any]:
    """Yield a :class:`~bhype_backup.sources.SourceView` of the VM at one instant."""
    from bhype_backup.sources import SourceView

    disks = {v: Path(store.volume(ref.name, v).path) for v in volumes}
    if not running:
        yield SourceView(disks, config, "consistent")
        return
    driver = active_driver(context.runtime)
    staging.mkdir(parents=True, exist_ok=True)
    try:
        with driver.consistent_point(ref.spec, Path(ref.vm_dir), [str(disks[v]) for v in volumes]) as frozen:
            context.log(f"{ref.name}: disks frozen at one instant by driver {driver.name} while it runs "
                        f"({', '.join(str(p) for p in frozen.overlays.values())} take its writes meanwhile)")
            copies = {}
            for name, path in config.items():
                copies[name] = staging / f"config-{name}"
                shutil.copy2(path, copies[name])
            frozen_files = list(frozen.disks.values())
            yield SourceView({v: frozen_files[i] for i, v in enumerate(volumes)}, copies, "consistent")
        context.log(f"{ref.name}: the writes made during the backup were merged back into its disks")
    finally:
        shutil.rmtree(staging, ignore_errors=True)
