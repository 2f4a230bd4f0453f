"""A cold move between two real bHype hosts (namespaces, own databases and workers, real sshd,
rsync over SSH): a QEMU guest keeps writing a counter to its disk until the move stops it;
on the target the VM has the same UUID and MACs, boots, and reads back every value written
before the stop. The source is gone afterwards; a copy gets a new identity."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import pair, wait_task
from guest_kit import (
    SerialWatch,
    create_vm,
    disk_counter,
    host_sections,
    last_written,
    read_disk_in_guest,
    start_and_boot,
    start_counter,
    vm,
)

from bhype_core.errors import NotFound

pytestmark = [pytest.mark.slow, pytest.mark.guest, pytest.mark.sshd]


@pytest.fixture
def guest_hosts(bhype_hosts: Any, tiny_guest: Any, tmp_path: Any) -> tuple[Any, Any]:
    a = bhype_hosts("a", **host_sections(tmp_path / "a", tiny_guest))
    b = bhype_hosts("b", sshd=True, **host_sections(tmp_path / "b", tiny_guest))
    pair(a, b)
    return a, b


def move(a: Any, expect: str = "succeeded", **body: Any) -> dict[str, Any]:
    return wait_task(a, a.api().request("POST", "/api/v1/migrate/moves", body), expect=expect)


def test_cold_move_keeps_identity_and_every_written_value(guest_hosts: Any) -> None:
    a, b = guest_hosts
    before = create_vm(a, "web")
    start_and_boot(a, "web")
    start_counter(a, "web")

    plan = move(a, vm="web", to="b", dry_run=True)["result"]
    assert plan["problems"] == [] and plan["running"] is True
    assert any(name.endswith(".img") for name in plan["files"]) and plan["bytes"] >= 64 * 2**20

    with SerialWatch(a, "web") as watch:  # the source's log goes with its directory
        task = move(a, vm="web", to="b", start=True)
    result = task["result"]
    written = last_written(watch.text)
    assert result["source"] == "removed" and result["started"] is True
    assert result["offline_seconds"] is not None and result["bytes_sent"] > 0
    assert "snapshot schedules" in " ".join(result["not_moved"])

    moved = vm(b, "web")
    assert moved["uuid"] == before["uuid"]
    assert [n["mac"] for n in moved["spec"]["nics"]] == [n["mac"] for n in before["spec"]["nics"]]
    assert moved["owner"] == before["owner"]
    with pytest.raises(NotFound):
        vm(a, "web")
    assert not (a.root / "ds" / "vms" / "web").exists()
    # The guest on b boots from the moved disk and reads the counter: nothing written before
    # the stop is lost (the loop wrote and fsynced `written` last, so the disk holds it).
    assert read_disk_in_guest(b, "web") >= written
    image = b.root / "ds" / "vms" / "web" / "disk0.img"
    assert disk_counter(image) >= written


def test_warm_move_copies_while_running_and_reports_the_offline_window(guest_hosts: Any) -> None:
    a, b = guest_hosts
    before = create_vm(a, "live")
    start_and_boot(a, "live")
    start_counter(a, "live")
    with SerialWatch(a, "live") as watch:
        # the rsync passes (a QEMU VM would take the dirty-block path: test_move_dirty.py)
        result = move(a, vm="live", to="b", mode="warm", start=True, dirty_tracking=False)["result"]
    written = last_written(watch.text)
    labels = [p["label"] for p in result["passes"]]
    assert labels[0].startswith("warm pass 1") and labels[-1].startswith("final copy"), labels
    # The final copy (VM stopped) sends only the delta, less than the first full pass.
    assert result["passes"][-1]["changed"] < result["passes"][0]["changed"]
    assert result["offline_seconds"] is not None and result["offline_seconds"] > 0
    assert vm(b, "live")["uuid"] == before["uuid"]
    assert read_disk_in_guest(b, "live") >= written
