"""Adopting a vm-bhyve zvol in place (issue 21) on real OpenZFS (the ZFS test guest over SSH):
the zvol keeps its guid (the same dataset, renamed by zfs-rename(8), not a copy) and its data,
and giving it back puts it where vm-bhyve had it."""

from __future__ import annotations

import pytest

from bhype_core.vm.services import open_datastore

pytestmark = [pytest.mark.guest, pytest.mark.slow]


def test_a_vm_bhyve_zvol_is_adopted_in_place_and_given_back(tank, guest_runtime):
    store = open_datastore(guest_runtime(), "zfs")
    run = tank.shared_runner.run
    old, device = "tank/vm/ad1/disk0", "/dev/zvol/tank/vm/ad1/disk0"
    run(["zfs", "create", "-p", "tank/vm/ad1"])
    run(["zfs", "create", "-s", "-V", "8M", old])  # vm-bhyve's sparse-zvol disk0
    store.wait_for_device(device)
    run(["dd", f"of={device}", "bs=512", "count=1", "conv=sync,fsync"], input=b"vm-bhyve data")

    def guid(dataset: str) -> str:
        return run(["zfs", "get", "-Hp", "-o", "value", "guid", dataset]).stdout.strip()

    before = guid(old)
    try:
        store.create_vm_dir("ad1")
        volume = store.adopt_volume("ad1", "disk0", device)
        assert str(volume.path) == "/dev/zvol/tank/bhype/vms/ad1/disk0" and volume.size == 8 << 20
        assert guid("tank/bhype/vms/ad1/disk0") == before  # the same dataset: nothing copied
        assert not store.host.exists(old)
        data = run(["dd", f"if={volume.path}", "bs=512", "count=1"]).stdout_bytes
        assert data.startswith(b"vm-bhyve data")

        store.release_volume("ad1", "disk0", device)
        assert guid(old) == before and not store.host.exists("tank/bhype/vms/ad1/disk0")
    finally:
        run(["zfs", "destroy", "-r", "tank/vm"])
        store.remove_vm_dir("ad1")
