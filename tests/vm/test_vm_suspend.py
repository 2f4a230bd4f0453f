"""vm.suspend and the resuming vm.start with the real QEMU driver (a guest with no OS: its
firmware's state is what is saved): the state cache says suspended, the stop hooks fire, a
normal start resumes it and a discarding start boots afresh. (The guest-visible proof, a
counter that goes on, is tests/guest/test_qemu_suspend.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session, select
from test_vm_power import PowerLog

from bhype_core.errors import Conflict
from bhype_core.plugin_api import suspend_supported, suspended_state
from bhype_core.vm.create import create_vm
from bhype_core.vm.models import VM
from bhype_core.vm.power import force_stop_vm, start_vm
from bhype_core.vm.suspend import suspend_vm

pytestmark = pytest.mark.guest


def cached(runtime, name):
    with Session(runtime.engine) as db:
        return db.exec(select(VM).where(VM.name == name)).one()


def test_suspend_then_start_resumes_and_discard_boots_afresh(make_vm_runtime, task_context):
    log = PowerLog()
    runtime = make_vm_runtime(("power-log", log))
    create_vm(task_context(runtime, "vm.create"), "s1", overrides={"boot": "grub", "memory": "64M"})
    with pytest.raises(Conflict, match="only a running VM can be suspended"):
        suspend_vm(task_context(runtime, "vm.suspend"), "s1")
    started = start_vm(task_context(runtime, "vm.start"), "s1")
    try:
        assert suspend_supported(runtime) is True and started["resumed"] is False
        log.seen.clear()
        context = task_context(runtime, "vm.suspend")
        result = suspend_vm(context, "s1", timeout=120)
        assert log.seen == ["before_stop", "after_stop"]
        assert result["state"] == "stopped" and result["suspended"]["size"] > 0
        row = cached(runtime, "s1")
        assert row.state == "stopped" and row.state_detail.startswith("suspended to disk at")
        assert row.status["suspended"]["path"].endswith("/s1/saved-state")
        assert "its next start resumes it" in context.reporter.text()
        saved = suspended_state(runtime, "s1")
        assert saved["driver"] == "qemu" and Path(saved["path"]).is_file()

        context = task_context(runtime, "vm.start")
        resumed = start_vm(context, "s1")
        assert resumed["state"] == "running" and resumed["resumed"] is True
        assert "resuming from the state saved at" in context.reporter.text()
        assert suspended_state(runtime, "s1") is None and not Path(saved["path"]).exists()
        assert cached(runtime, "s1").status["suspended"] is None

        suspend_vm(task_context(runtime, "vm.suspend"), "s1", timeout=120)
        context = task_context(runtime, "vm.start")
        fresh = start_vm(context, "s1", discard_saved_state=True)
        assert fresh["resumed"] is False and suspended_state(runtime, "s1") is None
        assert "discarded: the VM boots afresh" in context.reporter.text()
    finally:
        force_stop_vm(task_context(runtime, "vm.force_stop"), "s1")
