"""Recovery of an interrupted ``zfs.clone`` on real OpenZFS (issue 11): the task records its
intent (target tree, temporary snapshot) before the first change; with the worker dead half way
(a temporary snapshot taken and one dataset cloned), recovery destroys both, and the same clone
then succeeds. A clone whose record exists is kept."""

from __future__ import annotations

import pytest
from sqlalchemy import update
from sqlmodel import Session, col, select

from bhype_core.auth.principal import Principal
from bhype_core.db.intent_models import TaskIntent
from bhype_core.db.task_models import Task
from bhype_core.tasks import MemoryReporter, TaskContext, intents, service
from bhype_core.vm.create import create_vm
from bhype_zfs.clone_undo import UNDO_CLONE, undo_clone
from bhype_zfs.tasks import clone

from .helpers import task_context

pytestmark = [pytest.mark.guest, pytest.mark.slow]

VMS = "tank/bhype/vms"


def interrupted_context(runtime, arguments: dict) -> TaskContext:
    """The context of a ``zfs.clone`` Task row that its worker left ``interrupted``."""
    task = service.submit(runtime, Principal("alice", "operator"), "zfs.clone", arguments)
    with runtime.engine.begin() as connection:
        connection.execute(update(Task).where(col(Task.id) == task.id).values(state="interrupted"))
    return TaskContext(runtime, task.id, "zfs.clone", "alice", MemoryReporter())


def datasets(tank, *roots: str) -> list[str]:
    listed = tank.shared_runner.run(["zfs", "list", "-H", "-o", "name", "-t", "all", "-r", *roots], check=False)
    return sorted(listed.stdout.split())


def test_recovery_destroys_a_half_made_clone_and_its_snapshot(tank, guest_runtime):
    runtime = guest_runtime()
    create_vm(task_context(runtime, "vm.create"), "csrc", overrides={"boot": {"mode": "bhyveload"},
                                                                     "disks": [{"size": "8M"}, {"size": "8M"}]})
    context = interrupted_context(runtime, {"source": "csrc", "target": "cdst"})
    # What a kill -9 half way through leaves: the intent, the snapshot, the first dataset cloned.
    context.intent(UNDO_CLONE, "clone cdst of csrc", datastore="zfs", name="cdst", dataset=f"{VMS}/cdst",
                   source=f"{VMS}/csrc", snapshot="clone-dead1234")
    run = tank.shared_runner.run
    run(["zfs", "snapshot", "-r", f"{VMS}/csrc@clone-dead1234"])
    run(["zfs", "clone", f"{VMS}/csrc@clone-dead1234", f"{VMS}/cdst"])
    assert f"{VMS}/cdst" in datasets(tank, VMS)

    (replay,) = intents.settle(runtime, host="any")
    assert replay.undone == [f"clone leftovers {VMS}/cdst, {VMS}/csrc@clone-dead1234"]
    assert datasets(tank, f"{VMS}/csrc") == [f"{VMS}/csrc", f"{VMS}/csrc/disk0", f"{VMS}/csrc/disk1"]

    # The name is free again, and the clone task records its intent before its first change.
    again = interrupted_context(runtime, {"source": "csrc", "target": "cdst"})
    result = clone(again, "csrc", "cdst")
    assert result["registered"] is True
    with Session(runtime.engine) as db:
        (intent,) = db.exec(select(TaskIntent).where(TaskIntent.task_id == again.task_id)).all()
    assert (intent.action, intent.arguments["snapshot"]) == (UNDO_CLONE, result["snapshot"])
    # A registered clone is never destroyed by a late replay of that intent.
    assert undo_clone(again, **intent.arguments) is None
    assert f"{VMS}/cdst/disk1" in datasets(tank, VMS)
    assert "a VM record named cdst owns it" in again.reporter.lines[-1].message


def worker_config(zfs_host, runtime) -> dict:
    """A worker process on ``runtime``'s database driving the ZFS guest, as guest_settings does."""
    import importlib.metadata as metadata

    others = sorted({ep.name for ep in metadata.entry_points(group="bhype")
                     if not ep.name.startswith("core_") and ep.name != "zfs"})
    return {
        "core": {"data_dir": str(runtime.settings.core.data_dir), "platform": "linux", "disabled_plugins": others},
        "queue": {"backend": "sqlite"},
        "tasks": {"poll_interval": 0.5, "sweep_interval": 2.0},
        "runner": {"target": zfs_host.target, "ssh_identity": str(zfs_host.identity),
                   "ssh_options": list(zfs_host.options), "default_timeout": 300},
        "zfs": {"pool": "tank", "platform": "linux"},
        "vm": {"default_datastore": "zfs"},
        "vm.datastores.zfs": {"backend": "zfs", "dataset": "tank/bhype"},
    }


def test_kill_9_after_the_first_dataset_is_cloned_is_undone_by_recovery(tank, zfs_host, guest_runtime,
                                                                         start_worker):
    # A real worker dies by SIGKILL right after its first `zfs clone` (a failpoint): the
    # temporary snapshot and a half-cloned tree are left; the next worker's recovery removes both.
    import signal
    import time

    from bhype_core.failpoints import ENV as FAILPOINTS
    from bhype_core.tasks import store

    runtime = guest_runtime()
    create_vm(task_context(runtime, "vm.create"), "ksrc", overrides={"boot": {"mode": "bhyveload"},
                                                                     "disks": [{"size": "8M"}, {"size": "8M"}]})
    config = worker_config(zfs_host, runtime)
    first = start_worker(config, env={FAILPOINTS: "after:zfs clone"})
    victim = service.submit(runtime, Principal("alice", "operator"), "zfs.clone", {"source": "ksrc", "target": "kdst"})
    # The failpoint fires only after a *successful* `zfs clone`: a task that ended any other way
    # leaves the worker idle, so watch the task as well as the process and show both on failure.
    deadline = time.monotonic() + 300
    while first.process.poll() is None:
        task = store.get_task(runtime.engine, victim.id)
        assert task.state in ("queued", "running"), (task.state, task.error, first.log_text())
        assert time.monotonic() < deadline, (task.state, task.progress_message, first.log_text())
        time.sleep(0.5)
    assert first.process.returncode == -signal.SIGKILL, first.log_text()
    left = datasets(tank, VMS)
    assert f"{VMS}/kdst" in left and any(name.startswith(f"{VMS}/ksrc@clone-") for name in left), left

    start_worker(config)
    deadline = time.monotonic() + 300
    while (task := store.get_task(runtime.engine, victim.id)).state != "interrupted" or \
            not task.progress_message.endswith("undone"):
        assert time.monotonic() < deadline, (task.state, task.progress_message)
        time.sleep(0.5)
    assert datasets(tank, f"{VMS}/ksrc") == [f"{VMS}/ksrc", f"{VMS}/ksrc/disk0", f"{VMS}/ksrc/disk1"]
    assert not any(name.startswith(f"{VMS}/kdst") for name in datasets(tank, VMS))

    again = service.submit(runtime, Principal("alice", "operator"), "zfs.clone", {"source": "ksrc", "target": "kdst"})
    while (task := store.get_task(runtime.engine, again.id)).state in ("queued", "running"):
        assert time.monotonic() < deadline + 300, task.state
        time.sleep(0.5)
    assert task.state == "succeeded", task.error
