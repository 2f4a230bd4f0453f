"""A driver registered by a third party supplies its own firmware rules, spec rules and
capabilities (issue 12): the VM layer asks the active driver, never a platform name."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlmodel import Session

from bhype_core.drivers.base import HypervisorDriver, VMState, VMStatus
from bhype_core.drivers.capabilities import Capability, FirmwareRules
from bhype_core.errors import NotSupported, ValidationErrors
from bhype_core.hookspecs import hookimpl
from bhype_core.registry import DriverEntry
from bhype_core.vm.context import build_create_spec
from bhype_core.vm.create import create_vm
from bhype_core.vm.services import active_driver, open_datastore


class AcmeDriver(HypervisorDriver):
    """A hypervisor nobody in the core knows: UEFI with its own NVRAM file name, no VNC, and a
    rule of its own (memory in whole GiB). It never starts anything in these tests."""

    name = "acme"
    capabilities = frozenset({Capability.UEFI, Capability.SERIAL_CONSOLE})

    def __init__(self, template: Path) -> None:
        self.template = template

    def firmware_rules(self) -> FirmwareRules:
        return FirmwareRules(self.template, "ACME_NVRAM.bin", "acme-firmware install")

    def spec_checks(self):
        def whole_gib(spec):
            return [] if spec.memory % 2**30 == 0 else [("memory", "acme runs whole GiB only")]

        return [*super().spec_checks(), whole_gib]

    def preflight(self, spec, vm_dir, attachments=None):
        return []

    def plan(self, spec, vm_dir, attachments=None):
        return []

    def start(self, spec, vm_dir, attachments=None):
        raise AssertionError("not started in these tests")

    def stop(self, spec, vm_dir, timeout):
        return VMStatus(VMState.STOPPED)

    def force_stop(self, spec, vm_dir):
        return VMStatus(VMState.STOPPED)

    def status(self, spec, vm_dir):
        return VMStatus(VMState.STOPPED)

    def running_instances(self):
        return []


class AcmePlugin:
    def __init__(self, template: Path) -> None:
        self.template = template

    @hookimpl
    def bhype_register_drivers(self, register):
        register(DriverEntry(name="acme", factory=lambda runtime: AcmeDriver(self.template), platforms=("linux",)))


@pytest.fixture
def acme(make_vm_runtime, tmp_path):
    template = tmp_path / "acme-vars.bin"
    template.write_bytes(b"acme vars template")
    runtime = make_vm_runtime(("acme", AcmePlugin(template)), core={"platform": "linux", "driver": "acme"})
    assert active_driver(runtime).name == "acme"
    return runtime


def validate(runtime, **overrides):
    with Session(runtime.engine) as db:
        return build_create_spec(runtime, db, None, {"name": "web1", "memory": "1G", **overrides}, "alice")


def test_the_drivers_firmware_rules_name_the_nvram_copy(acme, task_context):
    create_vm(task_context(acme, "vm.create"), "web1", overrides={"memory": "1G", "boot": "uefi"})
    vm_dir = Path(open_datastore(acme).vm_dir("web1"))
    nvram = vm_dir / "ACME_NVRAM.bin"
    assert nvram.read_bytes() == b"acme vars template" and nvram.stat().st_mode & 0o777 == 0o600
    assert not (vm_dir / "OVMF_VARS.fd").exists()


def test_the_drivers_spec_rules_and_missing_capabilities_are_refused_at_plan_time(acme):
    with pytest.raises(ValidationErrors) as caught:
        validate(acme, memory="1536M", graphics={"vnc": True}, boot="uefi")
    messages = {error.path: error.message for error in caught.value.errors}
    assert messages == {
        "memory": "acme runs whole GiB only",
        "graphics.vnc": "a VNC framebuffer is not supported by driver acme",
    }
    assert validate(acme, boot="uefi").boot.mode == "uefi"
    with pytest.raises(ValidationErrors, match="boot mode uefi-csm is not supported by driver acme"):
        validate(acme, boot="uefi-csm")


def test_a_capability_the_driver_lacks_is_a_clear_not_supported(acme):
    driver = active_driver(acme)
    with pytest.raises(NotSupported) as caught:
        driver.stats(None, Path("/nonexistent"))
    assert caught.value.http_status == 422 and caught.value.code == "not_supported"
    assert caught.value.message == "live stats is not supported by driver acme"
