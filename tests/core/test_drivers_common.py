"""Driver selection by name, the built-in driver plugin and its settings, VNC port allocation,
and the exit-status decisions both drivers share (bhyve(8) EXIT STATUS, reference 1.7)."""

from __future__ import annotations

import socket
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from bhype_core.builtins import drivers as core_drivers
from bhype_core.drivers.base import Attachments, VMState, blocking
from bhype_core.drivers.bhyve import BhyveDriver
from bhype_core.drivers.exit_status import Outcome, decide
from bhype_core.drivers.ports import NoFreePort, PortAllocator
from bhype_core.drivers.qemu import QemuDriver
from bhype_core.drivers.select import select_driver
from bhype_core.errors import ConfigError
from bhype_core.host.runner import LocalRunner
from bhype_core.runtime import build_runtime
from bhype_core.spec import validate_spec
from bhype_core.testing import make_settings
from bhype_core.vm.firmware import FirmwareMissing


def runtime_with(tmp_path: Path, plugin_manager, register_plugin, **sections: dict):
    register_plugin(core_drivers, "core_drivers")
    return build_runtime(make_settings(tmp_path / "data", **sections), plugin_manager)


@pytest.mark.parametrize(("platform", "driver_class"), [("linux", QemuDriver), ("freebsd", BhyveDriver)])
def test_auto_picks_the_platforms_driver(tmp_path, plugin_manager, register_plugin, platform, driver_class):
    runtime = runtime_with(tmp_path, plugin_manager, register_plugin, core={"platform": platform})

    driver = select_driver(runtime)

    assert type(driver) is driver_class
    assert driver.run_dir == tmp_path / "data" / "run"


def test_settings_reach_the_driver(tmp_path, plugin_manager, register_plugin):
    runtime = runtime_with(
        tmp_path, plugin_manager, register_plugin, core={"driver": "qemu"}, qemu={"accel": "tcg", "machine": "pc"}
    )

    driver = select_driver(runtime)

    assert (driver.accel, driver.machine) == ("tcg", "pc")


def test_bad_settings_name_the_field(tmp_path, plugin_manager, register_plugin):
    with pytest.raises(ConfigError, match=r"qemu\.accel"):
        runtime_with(tmp_path, plugin_manager, register_plugin, qemu={"accel": "hvf"})


def test_unknown_or_foreign_driver_is_a_config_error(tmp_path, plugin_manager, register_plugin):
    runtime = runtime_with(tmp_path, plugin_manager, register_plugin, core={"driver": "xen", "platform": "linux"})
    with pytest.raises(ConfigError, match=r"core\.driver: no driver named 'xen'.*bhyve, qemu"):
        select_driver(runtime)

    runtime.settings.core.driver = "bhyve"
    with pytest.raises(ConfigError, match="runs on freebsd, not on linux"):
        select_driver(runtime)


def test_drivers_are_a_builtin_plugin_entry_point():
    names = {e.name: e.value for e in entry_points(group="bhype")}
    assert names["core_drivers"] == "bhype_core.builtins.drivers"


@pytest.mark.parametrize(
    ("status", "signal", "requested", "outcome"),
    [
        (0, None, False, Outcome.RESTART),  # reboot
        (0, None, True, Outcome.STOPPED),  # rebooted while a stop was requested
        (1, None, False, Outcome.STOPPED),  # powered off
        (2, None, False, Outcome.STOPPED),  # halted
        (3, None, False, Outcome.CRASHED),  # triple fault
        (4, None, True, Outcome.CRASHED),  # error, even during a stop
        (64, None, False, Outcome.CRASHED),  # EX_USAGE
        (None, 9, False, Outcome.CRASHED),  # killed
        (None, 9, True, Outcome.STOPPED),  # killed by the stop itself
    ],
)
def test_exit_status_decisions(status, signal, requested, outcome):
    assert decide(status, signal, stop_requested=requested).outcome is outcome


@pytest.fixture
def port_range():
    """A base with three free consecutive ports, away from 5900 (other tests' VMs)."""
    for base in range(46100, 46900, 10):
        if all(_free(p) for p in range(base, base + 3)):
            return base
    pytest.fail("no three free consecutive ports in 46100-46900")


def _free(port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_ports_skip_listeners_and_live_claims(tmp_path, port_range):
    active = {tmp_path / "a"}
    allocator = PortAllocator(tmp_path / "run", base=port_range, count=3)
    is_active = lambda vm_dir, instance: vm_dir in active  # noqa: E731
    for name in "abcd":
        (tmp_path / name).mkdir()
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", port_range))
        listener.listen()
        with allocator.locked():
            first = allocator.allocate(tmp_path / "a", "bhype-a", is_active)
            second = allocator.allocate(tmp_path / "b", "bhype-b", is_active)
        # b's claim only holds while b runs; a's holds, and the listener's port is taken
        assert (first, second) == (port_range + 1, port_range + 2)
        assert allocator.allocate(tmp_path / "c", "bhype-c", is_active) == port_range + 2
        active.add(tmp_path / "c")
        with pytest.raises(NoFreePort, match=f"between {port_range} and {port_range + 2}"):
            allocator.allocate(tmp_path / "d", "bhype-d", is_active)
    assert allocator.recorded(tmp_path / "a") == port_range + 1
    allocator.release(tmp_path / "a")
    active.discard(tmp_path / "a")
    # a VM gets its previous port back when it is free (bookmarked viewers keep working)
    assert allocator.peek(tmp_path / "a", is_active) == port_range + 1


def qemu_driver(tmp_path: Path, **options) -> QemuDriver:
    return QemuDriver(LocalRunner(), run_dir=tmp_path / "run", accel="tcg", **options)


def test_qemu_preflight_names_each_problem_with_a_fix(tmp_path):
    missing = tmp_path / "no-ovmf"
    driver = qemu_driver(tmp_path, binary="qemu-bhype-missing", ovmf=((f"{missing}/CODE.fd", f"{missing}/VARS.fd"),))
    spec = validate_spec({"name": "q1", "boot": "uefi", "disks": [{"size": "1G"}], "memory": "64T"})
    (tmp_path / "q1").mkdir()

    problems = {
        (p.field, p.message): p for p in driver.preflight(spec, tmp_path / "q1", Attachments(["/nonexistent.img"]))
    }

    assert problems[("host", "qemu-bhype-missing not found")].fix == "apt-get install qemu-system-x86"
    assert problems[("boot.mode", f"UEFI firmware not found at {missing}/CODE.fd")].fix == "apt-get install ovmf"
    with pytest.raises(FirmwareMissing, match=r"not found at .*/CODE.fd \(apt-get install ovmf\)"):
        driver.plan(spec, tmp_path / "q1", Attachments(["/nonexistent.img"]))  # show-command: a 409, not a 500
    assert ("disks.0", "disk image not found at /nonexistent.img") in problems
    memory = [p for (field, _), p in problems.items() if field == "memory"]
    assert (
        len(memory) == 1
        and "64 TiB requested but the host has only" in memory[0].message
        and memory[0].severity == "error"
    )


def test_qemu_says_it_cannot_wait_for_a_viewer_without_blocking_the_start(tmp_path):
    driver = qemu_driver(tmp_path)
    (tmp_path / "q3").mkdir()
    waiting = validate_spec({"name": "q3", "graphics": {"vnc": True, "wait": True}})
    (problem,) = [p for p in driver.preflight(waiting, tmp_path / "q3") if p.field == "graphics.wait"]
    assert problem.severity == "warning" and "cannot wait for a VNC viewer" in problem.message
    assert not blocking([problem])
    plain = validate_spec({"name": "q3", "graphics": {"vnc": True}})
    assert not [p for p in driver.preflight(plain, tmp_path / "q3") if p.field == "graphics.wait"]


def test_qemu_plan_keeps_sockets_short_and_vnc_on_a_private_socket(tmp_path):
    driver = qemu_driver(tmp_path)
    vm_dir = tmp_path / ("deep-" * 20) / "q2"
    vm_dir.mkdir(parents=True)
    spec = validate_spec({"name": "q2", "boot": "uefi-csm", "graphics": {"vnc": True, "password": "pw123456"}})

    plan = [c.argv for c in driver.plan(spec, vm_dir)]

    mkdir, launch, qemu = plan
    sockets = Path(mkdir[-1])
    assert mkdir[:-1] == ["mkdir", "-p", "-m", "700"] and len(str(sockets / "qmp-ctl.sock")) <= 100
    assert launch[1:] == ["-m", "bhype_core.drivers.supervisor", str(vm_dir)]
    monitors = [qemu[i + 1] for i, arg in enumerate(qemu) if arg == "-qmp"]
    assert monitors == [
        f"unix:{sockets}/qmp.sock,server=on,wait=off",
        f"unix:{sockets}/qmp-ctl.sock,server=on,wait=off",
    ]
    # VNC on a unix socket in the private socket directory, no TCP port, no password (issue 11).
    assert qemu[qemu.index("-vnc") + 1] == f"unix:{sockets}/vnc.sock"
    assert not any("pw123456" in arg for arg in qemu)


def test_qemu_start_without_firmware_fails_and_leaves_nothing(tmp_path):
    driver = qemu_driver(tmp_path, ovmf=((f"{tmp_path}/CODE.fd", f"{tmp_path}/VARS.fd"),))
    spec = validate_spec({"name": "q3", "boot": "uefi"})
    vm_dir = tmp_path / "q3"
    vm_dir.mkdir()

    with pytest.raises(FirmwareMissing, match=r"apt-get install ovmf"):
        driver.start(spec, vm_dir)

    assert list(vm_dir.iterdir()) == []
    assert driver.status(spec, vm_dir).state is VMState.STOPPED
