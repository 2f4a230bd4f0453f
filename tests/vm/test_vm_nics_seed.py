"""NICs on switches and cloud-init seeds through the VM layer.

The guest test runs a real tiny guest through the start/stop/edit/reconcile/destroy tasks and
the QEMU driver under TCG, with its switch, tap and QEMU inside a network namespace the test
creates (no traffic leaves it): the guest prints the hostname its seed gives it, the seed is
rebuilt from the spec at each start, and the NIC's tap is on the switch's bridge while the VM
runs and gone after a stop, after a crash (once reconciled) and after a destroy.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, select

from bhype_core.builtins import network as core_network
from bhype_core.errors import ValidationErrors
from bhype_core.network.models import Switch, linux_tap_name, row_from, validate_switch
from bhype_core.network.service import create_switch
from bhype_core.network.taps import TAPS_FILE
from bhype_core.testing.guest_image import READY_MARKER, GuestImage
from bhype_core.testing.netns import NetnsRunner, links, netns  # noqa: F401  (fixture)
from bhype_core.vm.create import create_vm
from bhype_core.vm.destroy import destroy_vm
from bhype_core.vm.edit import edit_vm
from bhype_core.vm.models import VM
from bhype_core.vm.power import PreflightFailed, start_vm, stop_vm
from bhype_core.vm.reconcile import reconcile
from bhype_core.vm.services import active_driver, open_datastore

BOOT_WAIT = 240.0  # seconds; TCG on a loaded 2-core machine, not a timing assertion


def wait_for(check: Callable[[], Any], what: str, timeout: float = BOOT_WAIT) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)
    return value


def serial_text(status: dict[str, Any]) -> str:
    path = Path(status["consoles"]["serial"]["log"])
    return path.read_text(errors="replace") if path.exists() else ""


def add_switch(runtime: Any, name: str) -> None:
    """A switch record only (for tests that run nothing on the host)."""
    with Session(runtime.engine) as db:
        db.add(row_from(validate_switch({"name": name})))
        db.commit()


def test_a_nic_must_name_an_existing_switch(vm_runtime, task_context):
    on_lan = {"boot": "grub", "nics": [{"switch": "lan"}]}
    with pytest.raises(ValidationErrors) as caught:
        create_vm(task_context(vm_runtime, "vm.create"), "web1", overrides=on_lan)
    assert [error.path for error in caught.value.errors] == ["nics.0.switch"]

    add_switch(vm_runtime, "lan")
    create_vm(task_context(vm_runtime, "vm.create"), "web1", overrides=on_lan)
    with Session(vm_runtime.engine) as db:  # the switch went away behind bHype's back
        db.delete(db.exec(select(Switch)).one())
        db.commit()
    with pytest.raises(PreflightFailed) as refused:
        start_vm(task_context(vm_runtime, "vm.start"), "web1")
    [problem] = refused.value.problems
    assert problem.field == "nics.0.switch" and "bhype switch create lan" in problem.fix
    assert not (open_datastore(vm_runtime).vm_dir("web1") / TAPS_FILE).exists()


@pytest.mark.guest
@pytest.mark.slow
def test_seeded_guest_on_a_switch_gets_its_hostname_and_loses_its_tap(
    tiny_guest: GuestImage, netns, make_vm_runtime, task_context  # noqa: F811  (netns: the fixture)
):
    host_ns = netns("host")
    runtime = make_vm_runtime(("core_network", core_network), core={"platform": "linux"}, qemu={"accel": "tcg"})
    runtime.__dict__["runner"] = NetnsRunner(host_ns)  # bridge, tap and QEMU all live in host_ns
    create_switch(task_context(runtime, "switch.create", user=None), name="lan")
    boot = {"mode": "grub", "kernel": str(tiny_guest.kernel), "initrd": str(tiny_guest.initrd),
            "cmdline": tiny_guest.append("bhype.hostname=from-the-cmdline")}
    create_vm(task_context(runtime, "vm.create"), "web1", overrides={
        "memory": "256M", "disks": [], "graphics": {"vnc": False}, "boot": boot, "nics": [{"switch": "lan"}],
        "cloud_init": {"meta_data": {"local-hostname": "seeded-one"}}})
    with Session(runtime.engine) as db:
        row = db.exec(select(VM).where(VM.name == "web1")).one()
    spec, vm_dir = row.spec_model(), open_datastore(runtime).vm_dir("web1")
    tap = linux_tap_name(row.uuid, 0)
    driver = active_driver(runtime)

    def crash(status: dict[str, Any]) -> None:
        os.kill(status["pid"], signal.SIGKILL)  # the QEMU process this test started
        wait_for(lambda: not driver.status(spec, vm_dir).active, "the supervisor to record the crash", 60)

    try:
        started = start_vm(task_context(runtime, "vm.start"), "web1")
        assert links(host_ns, "vm-lan") == {tap}
        # The seed's local-hostname wins over the kernel command line's.
        wait_for(lambda: f"{READY_MARKER} hostname=seeded-one " in serial_text(started), "the seeded hostname")
        stop_vm(task_context(runtime, "vm.stop"), "web1", timeout=90)
        assert tap not in links(host_ns) and "vm-lan" in links(host_ns)

        renamed = {"cloud_init": {"meta_data": {"local-hostname": "seeded-two"}}}
        edit_vm(task_context(runtime, "vm.edit"), "web1", renamed)
        again = start_vm(task_context(runtime, "vm.start"), "web1")
        wait_for(lambda: f"{READY_MARKER} hostname=seeded-two " in serial_text(again), "the edited hostname")
        crash(again)
        assert links(host_ns, "vm-lan") == {tap}  # nobody stopped it: the tap is still plugged
        reconcile(task_context(runtime, "vm.reconcile", user=None))
        assert tap not in links(host_ns)

        crash(start_vm(task_context(runtime, "vm.start"), "web1"))
        destroy_vm(task_context(runtime, "vm.destroy"), "web1")
        assert tap not in links(host_ns) and not vm_dir.exists()
    finally:
        if driver.status(spec, vm_dir).active:
            driver.force_stop(spec, vm_dir)
