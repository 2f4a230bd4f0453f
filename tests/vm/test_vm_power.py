"""vm.start / vm.stop / vm.restart with the real QEMU driver: a hypervisor that fails says why
(exit status and stderr tail), and the power tasks keep the state cache in step."""

from __future__ import annotations

import pytest
from sqlmodel import Session, select

from bhype_core.drivers.base import HypervisorFailed
from bhype_core.errors import Conflict, NotFound
from bhype_core.hookspecs import hookimpl
from bhype_core.tasks.authz import check_run
from bhype_core.vm.create import create_vm
from bhype_core.vm.models import VM
from bhype_core.vm.power import force_stop_vm, restart_vm, start_vm, stop_vm

pytestmark = pytest.mark.guest


def cached(runtime, name):
    with Session(runtime.engine) as db:
        return db.exec(select(VM).where(VM.name == name)).one()


def test_a_failing_hypervisor_reports_exit_status_and_stderr(vm_runtime, task_context):
    # An admin's raw QEMU option that QEMU refuses: the process exits at once.
    create_vm(task_context(vm_runtime, "vm.create", user=None), "bad", overrides={
        "boot": "grub", "owner": "root", "extra": {"qemu": ["-no-such-option"]}}, owner="root")
    context = task_context(vm_runtime, "vm.start", user=None)
    with pytest.raises(HypervisorFailed) as raised:
        start_vm(context, "bad")
    assert raised.value.exit_status not in (None, 0)
    assert "no-such-option" in raised.value.detail and "no-such-option" in raised.value.message
    row = cached(vm_runtime, "bad")
    assert row.state == "stopped"
    assert "start failed" in context.reporter.text()


def test_power_cycle_keeps_the_cache_in_step(vm_runtime, task_context):
    create_vm(task_context(vm_runtime, "vm.create"), "p1", overrides={"boot": "grub", "memory": "64M"})
    started = start_vm(task_context(vm_runtime, "vm.start"), "p1")
    try:
        assert started["state"] == "running" and cached(vm_runtime, "p1").status["pid"] == started["pid"]
        with pytest.raises(Conflict, match="already running"):
            start_vm(task_context(vm_runtime, "vm.start"), "p1")
        with pytest.raises(NotFound):  # another operator's task reaching alice's VM: refused before it runs
            check_run(vm_runtime, vm_runtime.registry.tasks["vm.stop"], "core_vms", "mallory", {"name": "p1"})
        # No OS in the guest to answer ACPI: the graceful stop forces it off after the timeout.
        stop_context = task_context(vm_runtime, "vm.stop")
        stopped = stop_vm(stop_context, "p1", timeout=2)
        assert stopped["state"] == "stopped" and cached(vm_runtime, "p1").state == "stopped"
        # It says it was forced, and the stop the user asked for does not read like an error.
        assert stopped["forced"] is True
        assert "did not shut down within 2 s, so it was powered off by force" in stop_context.reporter.text()
        detail = cached(vm_runtime, "p1").state_detail
        assert detail.startswith("stopped on request, powered off by force") and "exit status" not in detail
        again = restart_vm(task_context(vm_runtime, "vm.restart"), "p1", timeout=2)
        assert again["state"] == "running" and again["pid"] != started["pid"]
    finally:
        force_stop_vm(task_context(vm_runtime, "vm.force_stop"), "p1")
    assert cached(vm_runtime, "p1").state == "stopped"


class PowerLog:
    """Records the power lifecycle hooks in the order the core fires them."""

    def __init__(self):
        self.seen = []

    @hookimpl
    def bhype_vm_before_restart(self, vm, context):
        self.seen.append("before_restart")

    @hookimpl
    def bhype_vm_after_restart(self, vm, context):
        self.seen.append("after_restart")

    @hookimpl
    def bhype_vm_before_stop(self, vm, context):
        self.seen.append("before_stop")

    @hookimpl
    def bhype_vm_after_stop(self, vm, context):
        self.seen.append("after_stop")

    @hookimpl
    def bhype_vm_before_start(self, vm, context):
        self.seen.append("before_start")

    @hookimpl
    def bhype_vm_after_start(self, vm, context):
        self.seen.append("after_start")


def test_restart_fires_its_pair_around_the_stop_and_start_pairs(make_vm_runtime, task_context):
    log = PowerLog()
    runtime = make_vm_runtime(("power-log", log))
    create_vm(task_context(runtime, "vm.create"), "p2", overrides={"boot": "grub", "memory": "64M"})
    start_vm(task_context(runtime, "vm.start"), "p2")
    try:
        log.seen.clear()
        restart_vm(task_context(runtime, "vm.restart"), "p2", timeout=2)
        assert log.seen == ["before_restart", "before_stop", "after_stop", "before_start", "after_start",
                            "after_restart"]
    finally:
        force_stop_vm(task_context(runtime, "vm.force_stop"), "p2")


def test_an_install_start_of_a_vm_without_an_iso_is_refused_before_anything_runs(vm_runtime, task_context):
    # The worker checks the start mode again (the API did, but the VM may have lost its ISO since).
    from bhype_core.errors import ValidationErrors

    create_vm(task_context(vm_runtime, "vm.create"), "noiso", overrides={"boot": "grub", "memory": "64M"})
    context = task_context(vm_runtime, "vm.start")
    with pytest.raises(ValidationErrors) as raised:
        start_vm(context, "noiso", mode="install")
    assert raised.value.errors[0].path == "mode" and "has none" in raised.value.errors[0].message
    assert cached(vm_runtime, "noiso").state == "stopped" and "starting the hypervisor" not in context.reporter.text()
