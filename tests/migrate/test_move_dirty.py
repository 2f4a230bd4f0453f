"""A warm move with dirty-block tracking (issue 17, driver capability ``DIRTY_TRACKING``)
between two real bHype hosts (namespaces, own databases and workers, real sshd): a QEMU guest
keeps writing a counter to its disk until the move stops it. Every pass after the first sends
only the blocks QEMU reported written; the last ones are read while the guest powers off.

On the target the image equals the stopped source byte for byte (``--keep-source``), the
block-hash manifest is gone from the VM's directory, and the VM boots there and reads back
every value written before the stop."""

from __future__ import annotations

import hashlib
from typing import Any

import pytest
from conftest import pair, wait_task
from guest_kit import (
    SerialWatch,
    create_vm,
    host_sections,
    last_written,
    read_disk_in_guest,
    start_and_boot,
    start_counter,
    vm,
)

pytestmark = [pytest.mark.slow, pytest.mark.guest, pytest.mark.sshd]
MIB = 2**20


@pytest.fixture
def guest_hosts(bhype_hosts: Any, tiny_guest: Any, tmp_path: Any) -> tuple[Any, Any]:
    a = bhype_hosts("a", **host_sections(tmp_path / "a", tiny_guest))
    b = bhype_hosts("b", sshd=True, **host_sections(tmp_path / "b", tiny_guest))
    pair(a, b)
    return a, b


def sha256(path: Any) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(4 * MIB):
            digest.update(chunk)
    return digest.hexdigest()


def test_warm_move_copies_only_dirty_blocks_and_loses_nothing(guest_hosts: Any) -> None:
    a, b = guest_hosts
    before = create_vm(a, "dirty")
    start_and_boot(a, "dirty")
    start_counter(a, "dirty")
    body = {"vm": "dirty", "to": "b", "mode": "warm", "keep_source": True}
    with SerialWatch(a, "dirty") as watch:
        task = wait_task(a, a.api().request("POST", "/api/v1/migrate/moves", body))
    result = task["result"]
    written = last_written(watch.text)
    passes = result["passes"]
    assert [p.get("method") for p in passes] == ["dirty blocks"] * len(passes), passes
    assert passes[0]["label"].startswith("warm pass 1") and passes[-1]["label"].startswith("final copy")
    # The guest writes one sector again and again: after the first pass only that block moves.
    assert all(p["changed"] <= 2 * MIB for p in passes[1:]), passes
    assert result["offline_seconds"] is not None and "final copy" in result["offline_steps"]

    source, target = (h.root / "ds" / "vms" / "dirty" for h in (a, b))
    assert sha256(target / "disk0.img") == sha256(source / "disk0.img")  # the stopped source, byte for byte
    assert not (target / ".bhype-blocks").exists()
    moved = vm(b, "dirty")
    assert moved["uuid"] == before["uuid"]
    try:
        start_and_boot(b, "dirty")
        assert read_disk_in_guest(b, "dirty") >= written  # nothing written before the stop was lost
    finally:  # a VM's supervisor outlives its host's processes: end the guest here
        wait_task(b, b.api().request("POST", "/api/v1/vms/dirty/force-stop"))
