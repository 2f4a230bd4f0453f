"""Adopting a vm-bhyve zvol in place (issue 21) against recorded FreeBSD answers (constructed
from zfs-get(8) ``-Hp`` output and zfs-rename(8)): the zvol is renamed into the datastore, never
copied (no send/recv is recorded, so one would fail the test), a zvol in another pool is
refused before any command changes anything, and giving it back renames it home."""

from __future__ import annotations

import pytest

from bhype_core.errors import ValidationErrors
from bhype_core.storage.capabilities import StorageCapability
from bhype_zfs.argv import Tools
from bhype_zfs.storage import ZfsDatastoreOptions, ZfsStorage
from bhype_zfs.tool import ZfsHost

from .recorded import RecordedRunner

OLD = "tank/vm/web1/disk0"
NEW = "tank/bhype/vms/web1/disk0"
GET = ("zfs", "get", "-Hp", "-o", "name,property,value,source", "type,volsize", OLD)
GOT = f"{OLD}\ttype\tvolume\t-\n{OLD}\tvolsize\t21474836480\tlocal\n"


def exists(dataset: str, present: bool) -> dict:
    key = ("zfs", "list", "-H", "-o", "name", "-t", "all", dataset)
    return {key: (0, f"{dataset}\n", "") if present else (1, "", f"cannot open '{dataset}': dataset does not exist\n")}


def store(answers: dict, disk_type: str = "zvol") -> tuple[ZfsStorage, RecordedRunner]:
    runner = RecordedRunner(answers)
    options = ZfsDatastoreOptions(name="zfs", disk_type=disk_type, mountpoint="/tank/bhype")
    return ZfsStorage(ZfsHost(runner, Tools(platform="freebsd")), "tank/bhype", options), runner


def test_zvol_datastores_declare_adopt_file_ones_do_not() -> None:
    assert StorageCapability.ADOPT in store({})[0].capabilities
    assert StorageCapability.ADOPT not in store({}, "file")[0].capabilities


def test_a_vm_bhyve_zvol_is_renamed_in_place_not_copied() -> None:
    zfs, runner = store({
        GET: (0, GOT, ""),
        **exists(NEW, False),
        ("zfs", "rename", OLD, NEW): (0, "", ""),
        ("test", "-e", f"/dev/zvol/{NEW}"): (0, "", ""),
    })
    volume = zfs.adopt_volume("web1", "disk0", f"/dev/zvol/{OLD}")
    assert str(volume.path) == f"/dev/zvol/{NEW}"
    assert volume.size == 21474836480
    assert ["zfs", "rename", OLD, NEW] in runner.calls
    assert not any(call[1] in ("send", "receive", "recv") for call in runner.calls)


def test_a_zvol_of_another_pool_is_refused_before_anything_runs() -> None:
    zfs, runner = store({})
    with pytest.raises(ValidationErrors, match="cannot cross pools"):
        zfs.adopt_volume("web1", "disk0", "/dev/zvol/other/vm/web1/disk0")
    assert runner.calls == []


def test_a_filesystem_is_not_adopted_as_a_disk() -> None:
    got = f"{OLD}\ttype\tfilesystem\t-\n"
    zfs, runner = store({GET: (0, got, "")})
    with pytest.raises(ValidationErrors, match="not a ZFS volume"):
        zfs.adopt_volume("web1", "disk0", f"/dev/zvol/{OLD}")
    assert all(call[1] != "rename" for call in runner.calls)


def test_giving_back_renames_the_zvol_home() -> None:
    zfs, runner = store({**exists(NEW, True), ("zfs", "rename", NEW, OLD): (0, "", "")})
    zfs.release_volume("web1", "disk0", f"/dev/zvol/{OLD}")
    assert runner.calls[-1] == ["zfs", "rename", NEW, OLD]
