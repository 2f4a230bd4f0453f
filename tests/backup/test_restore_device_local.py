"""A stored disk restored into a *device* on this machine (the datastore is here, as on a FreeBSD
host whose zvols are /dev/zvol/…): rsync writes it in place (``--inplace --write-devices``)
straight from the target, and the device is read back through the runner and compared with the
manifest. A loop device stands in for the zvol (the datastore says ``device``; the ZFS guest
tests cover real zvols on a remote datastore: test_restore_zvol_guest.py)."""

from __future__ import annotations

import dataclasses
import subprocess
from pathlib import Path

import pytest

from bhype_backup.endpoint import Endpoint
from bhype_backup.points import get_point
from bhype_backup.restore import read_manifest
from bhype_backup.restore_disk import RestoreMismatch, datastore_is_here, write_disk
from bhype_backup.targets import get_target
from bhype_core.plugin_api import Volume
from bhype_core.tasks import TaskContext

from .world import MiB, write_pattern


@pytest.fixture
def loop_device(tmp_path):
    """A loop device over an 8 MiB file of other data (needs root and losetup)."""
    backing = tmp_path / "loop.img"
    backing.write_bytes(b"\xa5" * (8 * MiB))
    device = subprocess.run(["losetup", "-f", "--show", str(backing)], check=True, capture_output=True,
                            text=True).stdout.strip()
    try:
        yield device
    finally:
        subprocess.run(["losetup", "-d", device], check=False)


def test_disk_written_in_place_into_a_local_device_and_checked(world, tmp_path, loop_device):
    world.create_vm("lp", disks=["8M"])
    write_pattern(world.disk("lp", 0), 7, offset=5 * MiB, length=MiB)
    (tmp_path / "usb").mkdir()
    world.ok("backup.target_add", {"name": "usb", "destination": str(tmp_path / "usb")})
    done = world.ok("backup.run", {"vm": "lp", "target": "usb", "mode": "stop", "job": None})
    runtime = world.runtime
    assert datastore_is_here(runtime)
    row = get_point(runtime, done["point"])
    endpoint = Endpoint(runtime, get_target(runtime, "usb"))
    entry = next(f for f in read_manifest(endpoint, row).files if f.volume == "disk0")
    context = TaskContext(runtime, task_id="test-restore", kind="backup.restore", user="alice")
    volume = Volume("disk0", Path(loop_device), 8 * MiB, device=True)
    staging = tmp_path / "staging"
    staging.mkdir()

    write_disk(context, endpoint, row, entry, volume, staging, fresh=False, label="disk disk0", start=0, span=90)
    with open(loop_device, "rb") as handle:
        assert handle.read() == world.disk("lp", 0).read_bytes()
    assert not list(staging.iterdir())  # written straight from the target, nothing staged

    # The read-back check is real: a manifest that says otherwise is a mismatch.
    wrong = dataclasses.replace(entry, sha256="0" * 64)
    with pytest.raises(RestoreMismatch, match="reads back as sha256"):
        write_disk(context, endpoint, row, wrong, volume, staging, fresh=False, label="disk disk0", start=0,
                   span=90)

