"""vm.destroy and vm.edit on the real file system, database and (never started) QEMU driver."""

from __future__ import annotations

import os

import pytest
from sqlmodel import Session, select

from bhype_core.errors import Conflict, ValidationErrors
from bhype_core.hookspecs import hookimpl
from bhype_core.units import GIB
from bhype_core.vm.create import create_vm
from bhype_core.vm.destroy import destroy_vm
from bhype_core.vm.edit import LIVE_FIELDS, OFFLINE_FIELDS, edit_vm, merge_patch
from bhype_core.vm.firmware import nvram_name
from bhype_core.vm.models import VM
from bhype_core.vm.power import force_stop_vm, start_vm
from bhype_core.vm.services import active_driver, open_datastore

SPEC = {"disks": [{"size": "1G"}], "memory": "256M"}


def row(runtime, name="web1") -> VM | None:
    with Session(runtime.engine) as db:
        return db.exec(select(VM).where(VM.name == name)).first()


@pytest.fixture
def web1(vm_runtime, task_context):
    create_vm(task_context(vm_runtime, "vm.create"), "web1", template="debian", overrides=SPEC)
    return open_datastore(vm_runtime).vm_dir("web1")


@pytest.fixture
def running(vm_runtime, task_context, web1):
    """web1 really started by the QEMU driver (UEFI firmware, no bootable disk: it idles in the
    firmware), force-stopped afterwards."""
    start_vm(task_context(vm_runtime, "vm.start"), "web1")
    yield web1
    force_stop_vm(task_context(vm_runtime, "vm.force_stop"), "web1")


def test_destroy_removes_disks_files_and_row(vm_runtime, task_context, web1):
    (web1 / "serial.log").write_text("boot messages")
    result = destroy_vm(task_context(vm_runtime, "vm.destroy"), "web1")
    assert not web1.exists()
    assert row(vm_runtime) is None
    assert str(web1 / "disk0.img") in result["removed"]


def test_destroy_keeping_disks_removes_everything_else(vm_runtime, task_context, web1):
    (web1 / "serial.log").write_text("boot messages")
    result = destroy_vm(task_context(vm_runtime, "vm.destroy"), "web1", keep_disks=True)
    assert sorted(p.name for p in web1.iterdir()) == ["disk0.img"]
    assert result["kept"] == [str(web1 / "disk0.img")]
    assert row(vm_runtime) is None


class KeepForBackup:
    @hookimpl
    def bhype_vm_before_destroy(self, vm, context):
        raise ValidationErrors([("", f"{vm.name} has a backup in progress")])


def test_destroy_veto_changes_nothing(make_vm_runtime, task_context):
    runtime = make_vm_runtime(("backup_guard", KeepForBackup()))
    create_vm(task_context(runtime, "vm.create"), "web1", template="debian", overrides=SPEC)
    vm_dir = open_datastore(runtime).vm_dir("web1")
    with pytest.raises(ValidationErrors, match="plugin backup_guard: web1 has a backup in progress"):
        destroy_vm(task_context(runtime, "vm.destroy"), "web1")
    assert (vm_dir / "disk0.img").exists() and row(runtime) is not None


@pytest.mark.guest
def test_destroy_refuses_a_running_vm(vm_runtime, task_context, running):
    web1 = running
    with pytest.raises(Conflict, match="stop it before destroying"):
        destroy_vm(task_context(vm_runtime, "vm.destroy"), "web1")
    assert (web1 / "disk0.img").exists() and row(vm_runtime) is not None


class FailingAfterDestroy:
    @hookimpl
    def bhype_vm_after_destroy(self, vm, context):
        raise RuntimeError("could not deregister from DNS")


def test_failure_after_destroy_is_reported_but_everything_is_gone(make_vm_runtime, task_context):
    runtime = make_vm_runtime(("dns", FailingAfterDestroy()))
    create_vm(task_context(runtime, "vm.create"), "web1", template="debian", overrides=SPEC)
    context = task_context(runtime, "vm.destroy")
    result = destroy_vm(context, "web1")  # after_ only observes: the task reports, not fails
    assert result["hook_errors"] == [{"plugin": "dns", "hook": "bhype_vm_after_destroy",
                                      "error": "RuntimeError: could not deregister from DNS"}]
    assert "plugin dns failed in bhype_vm_after_destroy" in context.reporter.text()
    assert row(runtime) is None and not open_datastore(runtime).vm_dir("web1").exists()


def test_interrupted_destroy_keeps_the_row_and_a_second_run_finishes(vm_runtime, task_context, web1):
    # A disk that cannot be deleted (a directory in its place) stops the destroy part-way.
    os.unlink(web1 / "disk0.img")
    (web1 / "disk0.img").mkdir()
    with pytest.raises(Conflict):
        destroy_vm(task_context(vm_runtime, "vm.destroy"), "web1")
    left = row(vm_runtime)
    assert left is not None and left.state == "error" and "run it again" in left.state_detail
    (web1 / "disk0.img").rmdir()
    destroy_vm(task_context(vm_runtime, "vm.destroy"), "web1")  # disk already gone: finishes
    assert row(vm_runtime) is None and not web1.exists()


def test_merge_patch_follows_rfc_7396():
    target = {"a": 1, "b": {"c": 2, "d": 3}, "l": [1, 2]}
    assert merge_patch(target, {"a": None, "b": {"c": 5}, "l": [3]}) == {"b": {"c": 5, "d": 3}, "l": [3]}
    assert set(LIVE_FIELDS).isdisjoint(OFFLINE_FIELDS)


def test_edit_grows_and_adds_disks_and_stores_the_spec(vm_runtime, task_context, web1):
    result = edit_vm(task_context(vm_runtime, "vm.edit"), "web1",
                     {"memory": "512M", "disks": [{"size": "2G"}, {"size": "1G"}]})
    assert result["changed"] == ["disks", "memory"]
    assert os.stat(web1 / "disk0.img").st_size == 2 * GIB
    assert os.stat(web1 / "disk1.img").st_size == GIB
    spec = row(vm_runtime).spec_model()
    assert spec.memory == 512 * 1024**2 and [d.volume for d in spec.disks] == ["disk0", "disk1"]


def test_edit_refuses_shrinking_fixed_fields_and_silent_disk_removal(vm_runtime, task_context, web1):
    context = task_context(vm_runtime, "vm.edit")
    with pytest.raises(ValidationErrors, match="shrinking") as raised:
        edit_vm(context, "web1", {"disks": [{"size": "512M"}]})
    assert raised.value.errors[0].path == "disks.0.size"
    with pytest.raises(ValidationErrors) as raised:
        edit_vm(context, "web1", {"name": "other", "uuid": "6a0c9f0e-2b3d-4c55-9a1e-0c2d3e4f5a6b"})
    assert {e.path for e in raised.value.errors} == {"name", "uuid"}
    with pytest.raises(ValidationErrors, match="allow_disk_removal"):
        edit_vm(context, "web1", {"disks": []})
    assert (web1 / "disk0.img").exists()
    edit_vm(context, "web1", {"disks": []}, allow_disk_removal=True)
    assert not (web1 / "disk0.img").exists() and row(vm_runtime).spec["disks"] == []


@pytest.mark.guest
def test_edit_while_running_allows_only_live_fields(vm_runtime, task_context, running):
    context = task_context(vm_runtime, "vm.edit")
    with pytest.raises(Conflict, match="changing memory needs it stopped"):
        edit_vm(context, "web1", {"memory": "1G", "description": "db"})
    assert row(vm_runtime).spec["description"] == ""
    edit_vm(context, "web1", {"description": "the web server", "tags": ["prod"]})
    assert row(vm_runtime).spec_model().tags == ["prod"]


def test_edit_to_uefi_creates_the_nvram_copy(vm_runtime, task_context):
    create_vm(task_context(vm_runtime, "vm.create"), "k1", overrides={"boot": "grub"})
    vm_dir = open_datastore(vm_runtime).vm_dir("k1")
    edit_vm(task_context(vm_runtime, "vm.edit"), "k1", {"boot": {"mode": "uefi"}})
    assert (vm_dir / nvram_name(active_driver(vm_runtime))).is_file()
