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
from bhype_core.taskqueue import intents, service
from bhype_core.tasks import MemoryReporter, TaskContext
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
