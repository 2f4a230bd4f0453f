"""kill -9 of a real worker process in the middle of ``vm.create`` (issue 11, crash safety).

The worker is ``python -m bhype_core.tasks.worker`` on the embedded SQLite queue (and on Redis +
MariaDB). The cloud-image convert is the real ``qemu-img convert``, slowed down by its own
rate limit (``-r``, added by a wrapper first on the worker's PATH) so the kill lands while it
writes. A test plugin, loaded by the worker through a real entry point, can hold the task in
``bhype_vm_after_create`` (everything made and committed) for the second kill point. After a
restart: the task is interrupted, its undo journal replayed (logged on the task), nothing is
orphaned, the convert did not survive its worker, and the name can be used again.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as metadata
import os
import shutil
import signal
import subprocess
import tempfile
from pathlib import Path

import pytest
from sqlmodel import Session, select

from bhype_core.builtins import drivers as core_drivers
from bhype_core.builtins import isos as core_isos
from bhype_core.builtins import models as core_models
from bhype_core.builtins import storage as core_storage
from bhype_core.builtins import tasks as core_tasks
from bhype_core.builtins import vm_tasks as core_vms
from bhype_core.db.intent_models import TaskIntent
from bhype_core.db.migrate import upgrade
from bhype_core.db.models import HostCommand
from bhype_core.failpoints import ENV as FAILPOINTS
from bhype_core.isos import partial_path, upload_path
from bhype_core.plugins import make_plugin_manager
from bhype_core.runtime import build_runtime
from bhype_core.tasks import service, store
from bhype_core.testing.parts import missing
from bhype_core.testing.queue import queue_config, settings_from
from bhype_core.testing.waiting import running, wait_for
from bhype_core.units import MIB
from bhype_core.vm.models import VM

pytestmark = pytest.mark.slow

WAIT = 120.0  # seconds; generous for a loaded 2-core machine, never a timing assertion
IMAGE_MIB = 24
RATE = 1 * MIB  # bytes per second for the convert: the image takes ~24 s to write

PAUSE_PLUGIN = '''
"""Test plugin: holds vm.create in bhype_vm_after_create while PAUSE_FILE names the VM."""
import os, time
from bhype_core.hookspecs import hookimpl

@hookimpl
def bhype_vm_after_create(vm, context):
    path = os.environ.get("PAUSE_FILE", "")
    if path and os.path.exists(path) and open(path).read().strip() == vm.name:
        context.log("paused in after_create")
        time.sleep(600)
'''

QEMU_IMG_WRAPPER = '''#!/bin/sh
# The real qemu-img; a convert is rate-limited so a test can kill its worker half way.
if [ "$1" = convert ]; then
    shift
    exec {real} convert -r {rate} "$@"
fi
exec {real} "$@"
'''


def submit(runtime, user: str, kind: str, arguments: dict):
    """Submit as ``user`` (``root`` as an admin, anyone else as an operator)."""
    from bhype_core.auth.principal import Principal

    return service.submit(runtime, Principal(user, "admin" if user == "root" else "operator"), kind, arguments)


@pytest.fixture
def plugin_env(tmp_path: Path) -> dict[str, str]:
    """The worker's extra environment: the pause plugin on PYTHONPATH (a real entry point) and
    the rate-limiting qemu-img wrapper first on PATH."""
    site = tmp_path / "site"
    info = site / "bhype_test_pause-0.1.dist-info"
    info.mkdir(parents=True)
    (site / "bhype_test_pause.py").write_text(PAUSE_PLUGIN)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: bhype-test-pause\nVersion: 0.1\n"
                                   "Requires-Dist: bhype-core>=0.1\n")
    (info / "entry_points.txt").write_text("[bhype]\ntest_pause = bhype_test_pause\n")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    real = subprocess.run(["sh", "-c", "command -v qemu-img"], capture_output=True, text=True).stdout.strip()
    if not real:
        missing("qemu-img", "qemu-img is not installed (Debian package qemu-utils)")
    wrapper = bin_dir / "qemu-img"
    wrapper.write_text(QEMU_IMG_WRAPPER.format(real=real, rate=RATE))
    wrapper.chmod(0o755)
    return {"PYTHONPATH": str(site), "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "PAUSE_FILE": str(tmp_path / "pause")}


@pytest.fixture(params=["sqlite", pytest.param("redis", marks=[pytest.mark.redis, pytest.mark.mariadb])])
def backend(request, tmp_path: Path) -> dict:
    """Raw worker configuration with a directory datastore under a short path."""
    # Under /tmp with a short name: VM directories hold unix sockets (unix(7): 108 bytes).
    short = Path(tempfile.mkdtemp(prefix="bhc-", dir="/tmp"))
    request.addfinalizer(lambda: shutil.rmtree(short, ignore_errors=True))
    if request.param == "redis":
        raw = queue_config(short / "data", "redis", redis_url=request.getfixturevalue("redis_url"),
                           name=request.getfixturevalue("redis_prefix"))
        raw["core"]["database_url"] = request.getfixturevalue("fresh_mariadb_url")
    else:
        raw = queue_config(short / "data", "sqlite")
    raw["tasks"] = {"poll_interval": 0.5, "sweep_interval": 2.0}
    raw["vm"] = {"datastores": {"default": {"path": str(short / "ds")}}}
    raw["core"]["disabled_plugins"] = sorted(
        {ep.name for ep in metadata.entry_points(group="bhype") if not ep.name.startswith("core_")}
    )
    return raw


def toml_tables(raw: dict) -> dict:
    """``raw`` as the flat tables ``write_config`` writes (``[vm.datastores.default]``)."""
    flat = {name: values for name, values in raw.items() if name != "vm"}
    flat["vm.datastores.default"] = raw["vm"]["datastores"]["default"]
    return flat


def client_runtime(raw: dict):
    plugins = [("core_models", core_models), ("core_storage", core_storage), ("core_drivers", core_drivers),
               ("core_tasks", core_tasks), ("core_vms", core_vms), ("core_isos", core_isos)]
    runtime = build_runtime(settings_from(raw), make_plugin_manager(load_entrypoints=False, plugins=plugins))
    upgrade(runtime)
    return runtime


def add_qcow2(raw: dict, name: str) -> Path:
    """A qcow2 image of ``IMAGE_MIB`` MiB of non-zero data in the datastore's ISO library."""
    target = Path(raw["vm"]["datastores"]["default"]["path"]) / "isos" / name
    target.parent.mkdir(parents=True, exist_ok=True)
    source = target.with_name(".src.raw")
    source.write_bytes(bytes(range(1, 256)) * (IMAGE_MIB * MIB // 255))
    subprocess.run(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(source), str(target)], check=True)
    source.unlink()
    return target


def children(pid: int) -> dict[int, str]:
    """Running processes whose parent is ``pid``, with their command names (from /proc)."""
    found = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name, rest = stat[stat.index("(") + 1: stat.rindex(")")], stat[stat.rindex(")") + 2:].split()
        if int(rest[1]) == pid and rest[0] not in "ZX":
            found[int(entry)] = name
    return found


def vm_files(raw: dict) -> list[str]:
    root = Path(raw["vm"]["datastores"]["default"]["path"]) / "vms"
    return sorted(str(p.relative_to(root)) for p in root.rglob("*")) if root.exists() else []


def vm_names(runtime) -> list[str]:
    with Session(runtime.engine) as db:
        return [vm.name for vm in db.exec(select(VM))]


def intents_of(runtime, task_id: str) -> list[TaskIntent]:
    with Session(runtime.engine) as db:
        return list(db.exec(select(TaskIntent).where(TaskIntent.task_id == task_id)))


def messages(runtime, task_id: str) -> list[str]:
    return [line.message for line in store.read_log(runtime.engine, task_id)]


def recovered(runtime, task_id: str):
    task = store.get_task(runtime.engine, task_id)
    return task if task.state == "interrupted" and task.progress_message.endswith("undone") else None


def test_kill_9_mid_convert_undoes_the_create_and_kills_the_convert(backend, plugin_env, start_worker):
    runtime = client_runtime(backend)
    add_qcow2(backend, "cloud.qcow2")
    first = start_worker(toml_tables(backend), env=plugin_env)
    overrides = {"memory": "256M", "disks": [{"size": f"{2 * IMAGE_MIB}M", "source": "cloud.qcow2"}]}
    victim = submit(runtime, "alice", "vm.create", {"name": "crashy", "template": "debian", "overrides": overrides})

    disk = Path(backend["vm"]["datastores"]["default"]["path"]) / "vms" / "crashy" / "disk0.img"

    def converting() -> int | None:
        convert = [pid for pid, name in children(first.pid).items() if name == "qemu-img"]
        written = disk.exists() and disk.stat().st_blocks > 0
        return convert[0] if convert and written else None

    convert = wait_for(converting, "qemu-img convert to be writing the disk")
    first.send_signal(signal.SIGKILL)
    first.wait()
    # The convert dies with its worker (parent-death signal), not minutes later with parent 1.
    wait_for(lambda: not running(convert), "the convert to die with its worker", timeout=30)
    assert "crashy" in vm_files(backend)  # what the crash left, before recovery
    assert [i.action for i in intents_of(runtime, victim.id)] == ["vm.remove_dir", "vm.remove_volume"]
    with Session(runtime.engine) as db:
        started = db.exec(select(HostCommand).where(HostCommand.task_id == victim.id,
                                                    HostCommand.state == "running")).all()
    assert [row.argv[:2] for row in started] == [["qemu-img", "convert"]]  # recorded at its start

    second = start_worker(toml_tables(backend), env=plugin_env)
    task = wait_for(lambda: recovered(runtime, victim.id), "recovery to undo the create")
    assert vm_files(backend) == [] and vm_names(runtime) == []
    assert intents_of(runtime, victim.id) == []
    log = messages(runtime, victim.id)
    assert f"undone after the interruption: disk {disk}" in log
    assert f"undone after the interruption: VM directory {disk.parent}" in log
    assert task.error["detail"]["undone"] == [f"disk {disk}", f"VM directory {disk.parent}"]
    with Session(runtime.engine) as db:
        states = {row.argv[1]: (row.state, row.returncode)
                  for row in db.exec(select(HostCommand).where(HostCommand.task_id == victim.id))}
    assert states == {"info": ("finished", 0), "convert": ("interrupted", None)}

    # The name is free again: the same create (no image this time) succeeds.
    again = submit(runtime, "alice", "vm.create", {"name": "crashy", "template": "debian",
                                                   "overrides": {"memory": "256M", "disks": [{"size": "8M"}]}})
    done = wait_for(lambda: store.get_task(runtime.engine, again.id).state in ("succeeded", "failed"), "the retry")
    assert done and store.get_task(runtime.engine, again.id).state == "succeeded", messages(runtime, again.id)
    assert vm_names(runtime) == ["crashy"]
    assert second.pid not in (first.pid,)


def test_kill_9_after_the_row_is_committed_removes_row_disk_and_directory(tmp_path, backend, plugin_env,
                                                                          start_worker):
    runtime = client_runtime(backend)
    Path(plugin_env["PAUSE_FILE"]).write_text("paused")
    first = start_worker(toml_tables(backend), env=plugin_env)
    victim = submit(runtime, "alice", "vm.create", {"name": "paused", "template": "debian",
                                                    "overrides": {"memory": "256M", "disks": [{"size": "8M"}]}})
    wait_for(lambda: "paused in after_create" in messages(runtime, victim.id), "the create to reach after_create",
             detail=lambda: (store.get_task(runtime.engine, victim.id), messages(runtime, victim.id), first.log_text()))
    assert vm_names(runtime) == ["paused"] and "paused/disk0.img" in vm_files(backend)

    first.send_signal(signal.SIGKILL)
    first.wait()
    start_worker(toml_tables(backend), env=plugin_env)
    task = wait_for(lambda: recovered(runtime, victim.id), "recovery to undo the create")
    assert vm_names(runtime) == [] and vm_files(backend) == []
    assert task.error["detail"]["undone"][0] == "database row of VM paused"
    assert task.error["detail"]["undo_failed"] == []


def finished(runtime, task_id: str):
    task = store.get_task(runtime.engine, task_id)
    return task if task.state in ("succeeded", "failed", "cancelled", "interrupted") else None


def killed_at(worker, point: str) -> None:
    """Wait for ``worker`` to die at its failpoint (a real SIGKILL, sent by itself)."""
    assert worker.wait(timeout=WAIT) == -signal.SIGKILL, f"the worker did not die at {point}: {worker.log_text()}"


@pytest.mark.parametrize("point", ["intent:vm.finish_destroy", "vm.destroy:disk-deleted"])
def test_kill_9_during_destroy_is_finished_by_recovery(backend, plugin_env, start_worker, point):
    # Deleted data cannot come back: recovery finishes the destroy, from before the first
    # removal and from between two disks, and the name is free again.
    runtime = client_runtime(backend)
    first = start_worker(toml_tables(backend), env={**plugin_env, FAILPOINTS: point})
    made = submit(runtime, "alice", "vm.create", {"name": "doomed", "template": "debian",
                                                  "overrides": {"memory": "256M", "disks": [{"size": "8M"},
                                                                                           {"size": "8M"}]}})
    assert wait_for(lambda: finished(runtime, made.id), "the create").state == "succeeded"
    assert "doomed/disk0.img" in vm_files(backend) and "doomed/disk1.img" in vm_files(backend)

    victim = submit(runtime, "alice", "vm.destroy", {"name": "doomed"})
    killed_at(first, point)
    left = vm_files(backend)
    assert ("doomed/disk0.img" in left) == (point.startswith("intent:")) and "doomed/disk1.img" in left

    start_worker(toml_tables(backend), env=plugin_env)
    task = wait_for(lambda: recovered(runtime, victim.id), "recovery to finish the destroy",
                    detail=lambda: (store.get_task(runtime.engine, victim.id), messages(runtime, victim.id)))
    assert vm_names(runtime) == [] and vm_files(backend) == []
    assert intents_of(runtime, victim.id) == [] and task.error["detail"]["undo_failed"] == []
    again = submit(runtime, "alice", "vm.create", {"name": "doomed", "template": "debian",
                                                   "overrides": {"memory": "256M", "disks": [{"size": "8M"}]}})
    assert wait_for(lambda: finished(runtime, again.id), "the same name again").state == "succeeded"


def test_kill_9_during_iso_import_leaves_no_iso_and_the_name_reusable(backend, plugin_env, start_worker):
    runtime = client_runtime(backend)
    content = b"an ISO image" * 4096
    digest = hashlib.sha256(content).hexdigest()
    upload = "ab" * 16
    staged = upload_path(runtime, upload)
    staged.parent.mkdir(parents=True, exist_ok=True)
    staged.write_bytes(content)
    first = start_worker(toml_tables(backend), env={**plugin_env, FAILPOINTS: "intent:iso.undo_import"})
    victim = submit(runtime, "alice", "iso.import", {"name": "rescue.iso", "upload": upload, "sha256": digest})
    killed_at(first, "intent:iso.undo_import")

    start_worker(toml_tables(backend), env=plugin_env)
    wait_for(lambda: recovered(runtime, victim.id), "recovery of the import",
             detail=lambda: (store.get_task(runtime.engine, victim.id), messages(runtime, victim.id)))
    library = Path(backend["vm"]["datastores"]["default"]["path"]) / "isos"
    assert not (library / "rescue.iso").exists() and not partial_path(library / "rescue.iso").exists()

    staged.write_bytes(content)  # the user uploads again; the same name imports cleanly
    again = submit(runtime, "alice", "iso.import", {"name": "rescue.iso", "upload": upload, "sha256": digest})
    assert wait_for(lambda: finished(runtime, again.id), "the import again").state == "succeeded"
    assert (library / "rescue.iso").read_bytes() == content


@pytest.mark.guest
def test_a_vm_outlives_its_killed_worker(tmp_path, plugin_env, start_worker):
    # Host commands die with the worker; VMs must not (their supervisor gives the signal up).
    short = Path(tempfile.mkdtemp(prefix="bhc-", dir="/tmp"))
    try:
        raw = queue_config(short / "data", "sqlite")
        raw["tasks"] = {"poll_interval": 0.5, "sweep_interval": 2.0}
        raw["vm"] = {"datastores": {"default": {"path": str(short / "ds")}}}
        raw["core"]["disabled_plugins"] = sorted(
            {ep.name for ep in metadata.entry_points(group="bhype") if not ep.name.startswith("core_")})
        runtime = client_runtime(raw)
        first = start_worker(toml_tables(raw), env=plugin_env)
        # One after the other: a start is refused at submit for a VM that does not exist yet.
        made = submit(runtime, "alice", "vm.create", {"name": "lives", "overrides": {"boot": "grub",
                                                                                    "memory": "64M"}})
        wait_for(lambda: store.get_task(runtime.engine, made.id).state in ("succeeded", "failed"), "the create")
        tasks = [made, submit(runtime, "alice", "vm.start", {"name": "lives"})]
        ended = wait_for(lambda: all(store.get_task(runtime.engine, t.id).state in ("succeeded", "failed")
                                     for t in tasks) and [store.get_task(runtime.engine, t.id) for t in tasks],
                         "create and start")
        assert [t.state for t in ended] == ["succeeded", "succeeded"], [messages(runtime, t.id) for t in tasks]
        hypervisor = ended[1].result["pid"]
        first.send_signal(signal.SIGKILL)
        first.wait()
        assert running(hypervisor)  # the kill reached the worker only
        start_worker(toml_tables(raw), env=plugin_env)
        stop = submit(runtime, "alice", "vm.force_stop", {"name": "lives"})
        wait_for(lambda: store.get_task(runtime.engine, stop.id).state == "succeeded", "the force stop")
        wait_for(lambda: not running(hypervisor), "the VM to be off", timeout=30)
    finally:
        shutil.rmtree(short, ignore_errors=True)
