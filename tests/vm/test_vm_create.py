"""vm.create on the real file system and database: what a create leaves, and that a failure at
any step (plugin veto, a disk the OS refuses, missing firmware, a name taken meanwhile, a
cancel) leaves nothing: no directory, disk, NVRAM, row; a plugin failing after the commit is
recorded on the task and undoes nothing."""

from __future__ import annotations

import os
import resource
import signal
from collections.abc import Iterator

import pytest
from sqlmodel import Session, select

from bhype_core.errors import BhypeError, ValidationErrors
from bhype_core.hookspecs import hookimpl
from bhype_core.storage.sparse import allocated_bytes
from bhype_core.tasks import Cancelled
from bhype_core.units import GIB, MIB
from bhype_core.vm.create import create_vm
from bhype_core.vm.firmware import FirmwareMissing, nvram_name
from bhype_core.vm.models import VM
from bhype_core.vm.services import active_driver, open_datastore

SMALL = {"disks": [{"size": "1G"}, {"size": "2G"}], "memory": "256M", "cpus": 1}


def rows(runtime) -> list[VM]:
    with Session(runtime.engine) as db:
        return list(db.exec(select(VM)))


def datastore_files(runtime) -> list[str]:
    """Everything under the datastore's vms/ folder (relative paths)."""
    root = open_datastore(runtime).root / "vms"
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def assert_nothing_left(runtime) -> None:
    assert datastore_files(runtime) == []
    assert rows(runtime) == []


@pytest.fixture
def file_size_limit() -> Iterator:
    """``limit(bytes)``: a real per-process file size limit (setrlimit RLIMIT_FSIZE), so
    ftruncate/write past it fail with EFBIG the way a full or limited file system refuses."""
    previous = resource.getrlimit(resource.RLIMIT_FSIZE)
    handler = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # getrlimit(2): else SIGXFSZ kills us

    def limit(size: int) -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, previous[1]))

    yield limit
    resource.setrlimit(resource.RLIMIT_FSIZE, previous)
    signal.signal(signal.SIGXFSZ, handler)


def test_create_makes_directory_sparse_disks_nvram_and_row(vm_runtime, task_context):
    context = task_context(vm_runtime, "vm.create")
    result = create_vm(context, "web1", template="debian", overrides=SMALL)

    store = open_datastore(vm_runtime)
    vm_dir = store.vm_dir("web1")
    assert result["vm_dir"] == str(vm_dir)
    assert result["disks"] == [str(vm_dir / "disk0.img"), str(vm_dir / "disk1.img")]
    assert os.stat(vm_dir / "disk0.img").st_size == GIB and os.stat(vm_dir / "disk1.img").st_size == 2 * GIB
    assert allocated_bytes(vm_dir / "disk1.img") < MIB
    nvram = vm_dir / nvram_name(active_driver(vm_runtime))
    assert nvram.is_file() and nvram.stat().st_size > 0  # debian boots UEFI
    [row] = rows(vm_runtime)
    assert (row.name, row.owner, row.datastore, row.state) == ("web1", "alice", "default", "stopped")
    spec = row.spec_model()
    assert spec.template == "debian" and spec.owner == "alice" and spec.memory == 256 * MIB
    assert spec.nics[0].mac.startswith("58:9c:fc")
    # QEMU serves VNC on a root-only unix socket without a password: none is generated (issue 11).
    assert spec.graphics.vnc and spec.graphics.password is None
    assert context.reporter.latest.percent == 100


def test_vnc_password_is_generated_only_for_a_driver_that_uses_one(make_vm_runtime):
    from bhype_core.vm.context import build_create_spec

    specs = {}
    for platform, driver in (("linux", "qemu"), ("freebsd", "bhyve")):
        runtime = make_vm_runtime(core={"platform": platform, "driver": driver})
        with Session(runtime.engine) as db:
            specs[driver] = build_create_spec(runtime, db, "debian", {**SMALL, "name": "web1"}, "alice")
        runtime.engine.dispose()
    assert specs["qemu"].graphics.vnc and specs["qemu"].graphics.password is None
    # bhyve's fbuf listens on loopback TCP, open to every local account: it needs one.
    password = specs["bhyve"].graphics.password
    assert specs["bhyve"].graphics.vnc and password and len(password) == 8


def test_create_without_uefi_has_no_nvram(vm_runtime, task_context):
    create_vm(task_context(vm_runtime, "vm.create"), "k1", overrides={"boot": "grub", "disks": [{"size": "1G"}]})
    vm_dir = open_datastore(vm_runtime).vm_dir("k1")
    assert sorted(p.name for p in vm_dir.iterdir()) == ["disk0.img"]


def test_invalid_spec_is_refused_before_anything_is_created(vm_runtime, task_context):
    with pytest.raises(ValidationErrors) as raised:
        create_vm(task_context(vm_runtime, "vm.create"), "bad", template="debian",
                  overrides={"memory": "1K", "disks": [{"size": "nope"}]})
    assert {e.path for e in raised.value.errors} == {"memory", "disks.0.size"}
    assert_nothing_left(vm_runtime)


class Veto:
    @hookimpl
    def bhype_vm_before_create(self, vm, context):
        if vm.name.startswith("x"):
            raise ValidationErrors([("name", "names starting with x are reserved here")])


def test_before_create_veto_names_the_plugin_and_leaves_nothing(make_vm_runtime, task_context):
    runtime = make_vm_runtime(("naming_policy", Veto()))
    with pytest.raises(ValidationErrors) as raised:
        create_vm(task_context(runtime, "vm.create"), "xray", template="alpine")
    assert raised.value.errors[0].path == "name"
    assert "plugin naming_policy" in raised.value.errors[0].message
    assert_nothing_left(runtime)


def test_a_disk_the_os_refuses_rolls_back_the_disks_made_before_it(vm_runtime, task_context, file_size_limit):
    context = task_context(vm_runtime, "vm.create")
    file_size_limit(1536 * MIB)  # disk0 (1G) fits, disk1 (2G) is too large for this process
    with pytest.raises(BhypeError, match="cannot create disk disk1"):
        create_vm(context, "web1", template="alpine", overrides=SMALL)
    file_size_limit(resource.RLIM_INFINITY)
    assert_nothing_left(vm_runtime)
    log = context.reporter.text()
    assert "rolled back: disk" in log and "disk0.img" in log and "rolled back: VM directory" in log


def test_a_firmware_copy_the_os_refuses_rolls_everything_back(vm_runtime, task_context, file_size_limit):
    context = task_context(vm_runtime, "vm.create")
    file_size_limit(256 * 1024)  # smaller than the OVMF vars image (so: no disks either)
    with pytest.raises(OSError, match="too large"):
        create_vm(context, "web1", template="debian", overrides={"disks": []})
    file_size_limit(resource.RLIM_INFINITY)
    assert_nothing_left(vm_runtime)


def test_missing_firmware_is_named_and_rolled_back(vm_runtime, task_context, monkeypatch, tmp_path):
    # The firmware lookup is host state we cannot uninstall in a test: point it at a missing file.
    monkeypatch.setattr("bhype_core.vm.firmware.nvram_template",
                        lambda driver: (tmp_path / "OVMF_VARS_4M.fd", "apt-get install ovmf"))
    with pytest.raises(FirmwareMissing, match="apt-get install ovmf"):
        create_vm(task_context(vm_runtime, "vm.create"), "web1", template="debian", overrides=SMALL)
    assert_nothing_left(vm_runtime)


class RacingCreate:
    """Another create of the same name commits while this one builds its disks."""

    def __init__(self) -> None:
        self.runtime = None

    @hookimpl
    def bhype_vm_before_create(self, vm, context):
        with Session(context.runtime.engine) as db:
            db.add(VM(name=vm.name, uuid="00000000-0000-4000-8000-000000000001", owner="bob",
                      datastore="other", spec={"name": vm.name}))
            db.commit()


def test_name_taken_meanwhile_rolls_back_files(make_vm_runtime, task_context):
    runtime = make_vm_runtime(("racer", RacingCreate()))
    with pytest.raises(ValidationErrors, match="already exists"):
        create_vm(task_context(runtime, "vm.create"), "web1", template="debian", overrides=SMALL)
    assert datastore_files(runtime) == []
    assert [(r.name, r.owner) for r in rows(runtime)] == [("web1", "bob")]  # only the winner's row


class BrokenObserver:
    @hookimpl
    def bhype_vm_after_create(self, vm, context):
        assert vm.id is not None and vm.vm_dir.is_dir()
        raise RuntimeError("inventory service unreachable")


class Inventory:
    """An observer registered before the broken one: pluggy calls it after, and it still is."""

    def __init__(self):
        self.seen = []

    @hookimpl
    def bhype_vm_after_create(self, vm, context):
        self.seen.append(vm.name)


def test_after_create_failure_is_recorded_and_the_vm_stays(make_vm_runtime, task_context):
    """``after_`` hooks only observe: a raise is logged and reported on the task, nothing is
    undone, and the other observers are still called (once each)."""
    inventory = Inventory()
    runtime = make_vm_runtime(("other", inventory), ("inventory", BrokenObserver()))
    context = task_context(runtime, "vm.create")
    result = create_vm(context, "web1", template="debian", overrides=SMALL)
    assert result["hook_errors"] == [{"plugin": "inventory", "hook": "bhype_vm_after_create",
                                      "error": "RuntimeError: inventory service unreachable"}]
    assert [row.name for row in rows(runtime)] == ["web1"]
    assert datastore_files(runtime)  # directory and disks stay
    assert inventory.seen == ["web1"]
    assert "plugin inventory failed in bhype_vm_after_create (the step stays done)" in context.reporter.text()
    assert "rolled back" not in context.reporter.text()


def test_cancel_between_disks_rolls_back(vm_runtime, task_context):
    context = task_context(vm_runtime, "vm.create",
                           cancel_when=lambda progress: progress.message == "creating disk disk1")
    with pytest.raises(Cancelled):
        create_vm(context, "web1", template="alpine", overrides=SMALL)
    assert_nothing_left(vm_runtime)


def test_leftover_directory_is_a_conflict_and_is_not_removed(vm_runtime, task_context):
    store = open_datastore(vm_runtime)
    store.create_vm_dir("web1")
    (store.vm_dir("web1") / "disk0.img").write_bytes(b"someone's data")
    with pytest.raises(BhypeError, match="already exists"):
        create_vm(task_context(vm_runtime, "vm.create"), "web1", template="alpine")
    assert (store.vm_dir("web1") / "disk0.img").read_bytes() == b"someone's data"
    assert rows(vm_runtime) == []


@pytest.mark.mariadb
def test_create_on_mariadb(make_vm_runtime, task_context, fresh_mariadb_url):
    runtime = make_vm_runtime(database_url=fresh_mariadb_url)
    create_vm(task_context(runtime, "vm.create"), "web1", template="alpine", overrides={"disks": []})
    with pytest.raises(ValidationErrors, match="already exists"):
        create_vm(task_context(runtime, "vm.create"), "web1", template="alpine", overrides={"disks": []})
    assert [r.name for r in rows(runtime)] == ["web1"]


