"""The bhyve driver and its supervisor loop, with stand-in bhyve/bhyvectl/bhyveload executables.

bhyve cannot run on Linux; ``fake_bhyve/`` holds the only doubles, written from bhyve(8) EXIT
STATUS and SIGNAL HANDLING, bhyvectl(8) and bhyveload(8) (see its README). Everything else is
real: the runner, the daemonized supervisor process, pid/state files, signals.
Expectations come from reference freebsd-host.md 1.7 (exit statuses, stop sequence), 2.1
(loader before every boot), 3.1 (bhyvectl) and 1.6 (per-VM NVRAM copy).
"""

from __future__ import annotations

import os
import signal
import stat
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bhype_core.drivers.base import Attachments, HypervisorFailed, VMState, VMStatus, blocking, crash_event
from bhype_core.drivers.bhyve import BhyveDriver
from bhype_core.drivers.state import ProcessTable, read_json, supervisor_markers
from bhype_core.errors import Conflict
from bhype_core.host.runner import LocalRunner
from bhype_core.spec import SpecContext, VMSpec, validate_spec

FAKE = Path(__file__).resolve().parent / "fake_bhyve"
ROM_FAILURE = "ROM boot failed: unrestricted guest capability not available"  # reference 1.6, exit 4


class FakeHost:
    """A stand-in bhyve host: the fake tools' state directory, firmware, VM directories."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.fake = root / "fake"
        self.firmware = root / "firmware"
        for directory in (self.fake / "vmm", self.fake / "script", self.fake / "guest", self.firmware):
            directory.mkdir(parents=True)
        (self.firmware / "BHYVE_UEFI_CODE.fd").write_bytes(b"code")
        (self.firmware / "BHYVE_UEFI_VARS.fd").write_bytes(b"vars template")
        self.vm_dirs: list[Path] = []

    def driver(self, **options: object) -> BhyveDriver:
        settings: dict = dict(
            run_dir=self.root / "run", bhyve=str(FAKE / "bhyve"), bhyvectl=str(FAKE / "bhyvectl"),
            bhyveload=str(FAKE / "bhyveload"), firmware_dir=str(self.firmware), vmm_dir=str(self.fake / "vmm"),
            start_grace=1.0, start_timeout=30,
        )  # fmt: skip
        settings.update(options)
        return BhyveDriver(LocalRunner(), **settings)

    def vm_dir(self, name: str) -> Path:
        path = self.root / "vms" / name
        path.mkdir(parents=True)
        self.vm_dirs.append(path)
        return path

    def script(self, spec: VMSpec, *actions: str) -> None:
        """How the next bhyve runs of this VM behave (fake_bhyve/README.md)."""
        (self.fake / "script" / spec.instance_name).write_text("".join(a + "\n" for a in actions))

    def guest(self, spec: VMSpec, event: str) -> None:
        """Make the running guest reboot, power off, halt or triple-fault."""
        tmp = self.fake / "guest" / f"{spec.instance_name}.tmp"
        tmp.write_text(event)
        tmp.rename(self.fake / "guest" / spec.instance_name)  # the stand-in never reads half

    def instance_exists(self, spec: VMSpec) -> bool:
        return (self.fake / "vmm" / spec.instance_name).exists()

    def calls(self, prog: str | None = None) -> list[list[str]]:
        """Every call of the stand-in tools so far: ``[program, *arguments]``."""
        path = self.fake / "calls.log"
        calls = [line.split("\t") for line in path.read_text().splitlines()] if path.exists() else []
        return [call for call in calls if prog is None or call[0] == prog]

    def programs(self) -> list[str]:
        """The tools called, in order, with the bhyvectl action (``bhyvectl --destroy``)."""
        return [c[0] if c[0] != "bhyvectl" else f"bhyvectl {c[-1]}" for c in self.calls()]

    def cleanup(self) -> None:
        """Kill what a failed test left running (only the pids our state files recorded)."""
        procs = ProcessTable(LocalRunner())
        for vm_dir in self.vm_dirs:
            state = read_json(vm_dir / "state.json") or {}
            for pid, markers in (
                (state.get("supervisor_pid"), supervisor_markers(vm_dir)),
                (state.get("hypervisor_pid"), (str(state.get("instance")),)),
            ):
                if procs.alive(pid, markers):
                    os.kill(pid, signal.SIGKILL)


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHost]:
    monkeypatch.setenv("FAKE_BHYVE_DIR", str(tmp_path / "fake"))
    fake = FakeHost(tmp_path)
    yield fake
    fake.cleanup()


def make_spec(name: str, **extra: object) -> VMSpec:
    return validate_spec({"name": name, "memory": "256M", **extra})


def wait_for(condition: Callable[[], object], timeout: float = 30.0) -> object:
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached in time")
        time.sleep(0.05)
    return value


def wait_state(driver: BhyveDriver, spec: VMSpec, vm_dir: Path, *states: VMState) -> VMStatus:
    return wait_for(lambda: (s := driver.status(spec, vm_dir)).state in states and s)  # type: ignore[return-value]


def test_reboot_restarts_bhyve_and_stop_sends_acpi(host: FakeHost) -> None:
    driver, spec = host.driver(), make_spec("web1")
    vm_dir = host.vm_dir("web1")

    started = driver.start(spec, vm_dir)

    assert started.state is VMState.RUNNING and started.pid
    assert ProcessTable(LocalRunner()).alive(started.pid, (spec.instance_name,))
    # bhyve got the per-VM NVRAM copy, never the template (reference 1.6)
    assert (vm_dir / "uefi-vars.fd").read_bytes() == b"vars template"
    assert f"bootrom,{host.firmware}/BHYVE_UEFI_CODE.fd,{vm_dir}/uefi-vars.fd" in host.calls("bhyve")[0]

    host.guest(spec, "reboot")  # bhyve exits 0
    rebooted = wait_for(lambda: (s := driver.status(spec, vm_dir)).restarts == 1 and s.state is VMState.RUNNING and s)

    assert rebooted.pid != started.pid and rebooted.supervisor_pid == started.supervisor_pid
    assert rebooted.history[-1]["exit_status"] == 0 and rebooted.history[-1]["outcome"] == "restart"
    # A UEFI guest keeps its VM instance across a reboot: no destroy in between (reference 2.3).
    assert host.programs() == ["bhyve", "bhyve"]

    stopped = driver.stop(spec, vm_dir, timeout=30)

    assert stopped.state is VMState.STOPPED and stopped.exit_status == 1
    assert "guest powered off" in stopped.detail
    assert host.programs() == ["bhyve", "bhyve", "bhyvectl --destroy"]  # no force needed
    assert not host.instance_exists(spec)
    assert stopped.pid is None and not ProcessTable(LocalRunner()).alive(rebooted.pid)


@pytest.mark.parametrize(("event", "status", "meaning"), [("poweroff", 1, "powered off"), ("halt", 2, "halted")])
def test_guest_poweroff_or_halt_stops(host: FakeHost, event: str, status: int, meaning: str) -> None:
    driver, spec = host.driver(), make_spec("web2")
    vm_dir = host.vm_dir("web2")
    first = driver.start(spec, vm_dir)

    host.guest(spec, event)
    final = wait_state(driver, spec, vm_dir, VMState.STOPPED, VMState.CRASHED)

    assert final.state is VMState.STOPPED and final.exit_status == status
    assert meaning in final.detail and final.restarts == 0
    assert host.programs() == ["bhyve", "bhyvectl --destroy"]  # no -D: the supervisor destroys
    assert not ProcessTable(LocalRunner()).alive(first.supervisor_pid, supervisor_markers(vm_dir))
    assert not (vm_dir / "supervisor.pid").exists()


def test_triple_fault_is_a_crash_reported_once(host: FakeHost) -> None:
    driver, spec = host.driver(), make_spec("web3")
    vm_dir = host.vm_dir("web3")
    crashes: list[tuple[str, VMStatus]] = []
    driver.add_crash_listener(lambda name, status: crashes.append((name, status)))
    driver.start(spec, vm_dir)

    host.guest(spec, "triple-fault")  # bhyve exits 3
    final = wait_state(driver, spec, vm_dir, VMState.STOPPED, VMState.CRASHED)

    assert final.state is VMState.CRASHED and final.exit_status == 3
    assert "triple fault" in final.detail and final.crash_id
    assert [(name, status.crash_id) for name, status in crashes] == [("web3", final.crash_id)]
    event = crash_event(*crashes[0])
    assert (event.kind, event.subject, event.severity) == ("vm.crashed", "vm:web3", "error")
    assert event.message == "VM web3 crashed: guest triple fault" and event.data["exit_status"] == 3
    # Every later look (this process or another driver) sees the crash but reports it no more.
    other = host.driver()
    other_crashes: list[str] = []
    other.add_crash_listener(lambda name, status: other_crashes.append(name))
    assert other.status(spec, vm_dir).state is VMState.CRASHED
    assert driver.status(spec, vm_dir).state is VMState.CRASHED
    assert len(crashes) == 1 and other_crashes == []
    assert host.programs() == ["bhyve", "bhyvectl --destroy"]


def test_error_exit_4_fails_the_start_with_stderr_and_leaves_nothing(host: FakeHost) -> None:
    driver = host.driver(start_grace=5.0)  # a failing bhyve must exit within it, even on a loaded machine
    spec = make_spec("web4", graphics={"vnc": True})
    vm_dir = host.vm_dir("web4")
    host.script(spec, f"fail 4 {ROM_FAILURE}")

    with pytest.raises(HypervisorFailed) as failure:
        driver.start(spec, vm_dir)

    assert failure.value.exit_status == 4
    assert ROM_FAILURE in str(failure.value) and "exited with status 4" in str(failure.value)
    status = driver.status(spec, vm_dir)
    assert status.state is VMState.STOPPED and status.exit_status == 4 and ROM_FAILURE in status.detail
    assert not (vm_dir / "uefi-vars.fd").exists()  # created by this start, removed with it
    assert not list((host.root / "run" / "vnc").glob("[0-9]*"))  # the VNC port is not held
    assert not (vm_dir / "supervisor.pid").exists()
    assert driver.running_instances() == []


def test_exit_1_before_running_is_a_failed_start_not_a_poweroff(host: FakeHost) -> None:
    # bhyve(8) usage(1) exits 1, the same number as "powered off" (reference 1.7 caveat).
    driver, spec = host.driver(start_grace=5.0), make_spec("web5")
    host.script(spec, "fail 1 Usage: bhyve [-AaCDeHhPSuWwxY]")

    with pytest.raises(HypervisorFailed) as failure:
        driver.start(spec, host.vm_dir("web5"))

    assert failure.value.exit_status == 1 and "Usage: bhyve" in str(failure.value)


def test_a_guest_rebooting_at_once_is_a_started_vm_restarted(host: FakeHost) -> None:
    # Exit 0 within the start grace: the guest ran and rebooted (bhyve(8) EXIT STATUS), which no
    # failed start does. The start succeeds and the supervisor boots the guest again.
    driver, spec = host.driver(start_grace=5.0), make_spec("web9")
    vm_dir = host.vm_dir("web9")
    host.script(spec, "fail 0", "run acpi")

    started = driver.start(spec, vm_dir)

    assert started.state is VMState.RUNNING
    assert [h["outcome"] for h in started.history] == ["restart"] and started.restarts == 1
    assert host.programs()[:2] == ["bhyve", "bhyve"]
    driver.force_stop(spec, vm_dir)


def test_a_guest_powering_off_at_once_started_and_stopped(host: FakeHost) -> None:
    # A quiet exit 1 within the start grace is a power-off, not a failed start.
    driver, spec = host.driver(start_grace=5.0), make_spec("web10")
    vm_dir = host.vm_dir("web10")
    host.script(spec, "fail 1")

    started = driver.start(spec, vm_dir)

    assert started.state is VMState.STOPPED and started.exit_status == 1
    assert "powered off" in started.detail
    assert not (vm_dir / "supervisor.pid").exists() and driver.running_instances() == []


def test_error_after_a_reboot_is_a_crash_with_the_stderr_tail(host: FakeHost) -> None:
    driver, spec = host.driver(), make_spec("web6")
    vm_dir = host.vm_dir("web6")
    host.script(spec, "run acpi", "fail 4 vm_setup_memory: Cannot allocate memory")
    driver.start(spec, vm_dir)

    host.guest(spec, "reboot")
    final = wait_state(driver, spec, vm_dir, VMState.STOPPED, VMState.CRASHED)

    assert final.state is VMState.CRASHED and final.exit_status == 4
    assert "vm_setup_memory: Cannot allocate memory" in final.detail
    assert [h["outcome"] for h in final.history] == ["restart", "crashed"]


def test_guest_ignoring_acpi_is_powered_off_by_force(host: FakeHost) -> None:
    driver, spec = host.driver(), make_spec("web7")
    vm_dir = host.vm_dir("web7")
    host.script(spec, "run noacpi")
    started = driver.start(spec, vm_dir)

    final = driver.stop(spec, vm_dir, timeout=0.5)

    assert final.state is VMState.STOPPED and final.exit_status == 1
    assert "by force" in final.detail and "did not shut down within 0.5s" in final.detail
    # SIGTERM first (ignored), then bhyvectl --force-poweroff, then --destroy (reference 1.7)
    assert host.programs() == ["bhyve", "bhyvectl --force-poweroff", "bhyvectl --destroy"]
    assert not ProcessTable(LocalRunner()).alive(started.pid)


def test_force_stop_powers_off_at_once(host: FakeHost) -> None:
    driver, spec = host.driver(), make_spec("web8")
    vm_dir = host.vm_dir("web8")
    driver.start(spec, vm_dir)

    final = driver.force_stop(spec, vm_dir)

    assert final.state is VMState.STOPPED and "force-stop requested" in final.detail
    assert host.programs() == ["bhyve", "bhyvectl --force-poweroff", "bhyvectl --destroy"]
    assert not host.instance_exists(spec)


def test_bhyveload_runs_before_every_boot_on_a_fresh_instance(host: FakeHost) -> None:
    driver = host.driver()
    spec = make_spec("fbsd1", boot="bhyveload", disks=[{"size": "1G"}], graphics={"vnc": False})
    vm_dir = host.vm_dir("fbsd1")
    disk = vm_dir / "disk0.img"
    disk.write_bytes(b"")
    attachments = Attachments(disk_paths=[str(disk)])
    driver.start(spec, vm_dir, attachments)

    host.guest(spec, "reboot")
    wait_for(lambda: driver.status(spec, vm_dir).restarts == 1 and len(host.calls("bhyve")) == 2)
    driver.force_stop(spec, vm_dir)

    # reference 2.1: destroy, bhyveload, bhyve before every boot; bhyveload and bhyve agree on -m
    assert host.programs() == [
        "bhyveload", "bhyve", "bhyvectl --destroy", "bhyveload", "bhyve",
        "bhyvectl --force-poweroff", "bhyvectl --destroy",
    ]  # fmt: skip
    loader = host.calls("bhyveload")[0]
    assert loader[-1] == spec.instance_name and ["-d", str(disk)] == loader[3:5]
    assert loader[loader.index("-m") + 1] == host.calls("bhyve")[0][host.calls("bhyve")[0].index("-m") + 1]


def test_vm_outlives_its_driver_and_even_its_supervisor(host: FakeHost) -> None:
    spec = make_spec("web9")
    vm_dir = host.vm_dir("web9")
    started = host.driver().start(spec, vm_dir)

    fresh = host.driver()  # an API/worker restart: nothing but the files and processes remain
    assert fresh.status(spec, vm_dir).pid == started.pid
    assert fresh.running_instances() == [spec.instance_name]
    with pytest.raises(Conflict):
        fresh.start(spec, vm_dir)

    os.kill(started.supervisor_pid, signal.SIGKILL)
    ProcessTable(LocalRunner()).wait_gone(started.supervisor_pid, supervisor_markers(vm_dir), 10)
    orphan = fresh.status(spec, vm_dir)
    assert orphan.state is VMState.RUNNING and orphan.pid == started.pid
    assert "unsupervised" in orphan.detail

    final = fresh.stop(spec, vm_dir, timeout=30)

    assert final.state is VMState.STOPPED
    assert not host.instance_exists(spec)  # the driver destroyed what no supervisor could
    assert fresh.running_instances() == []


def test_preflight_names_each_problem_with_a_fix(host: FakeHost) -> None:
    driver = host.driver(firmware_dir=str(host.root / "no-firmware"))
    spec = make_spec("web10", disks=[{"size": "1G"}], nics=[{}], cdrom="debian.iso", graphics={"vnc": True})
    vm_dir = host.vm_dir("web10")
    attachments = Attachments(disk_paths=[str(vm_dir / "missing.img")], cdrom_path=str(vm_dir / "debian.iso"))

    problems = {(p.field, p.message): p.fix for p in driver.preflight(spec, vm_dir, attachments)}

    firmware = host.root / "no-firmware" / "BHYVE_UEFI_CODE.fd"
    assert problems[("boot.mode", f"firmware not found at {firmware}")] == "pkg install edk2-bhyve"
    assert problems[("disks.0", f"disk image not found at {vm_dir / 'missing.img'}")]
    assert problems[("cdrom", f"ISO debian.iso not found at {vm_dir / 'debian.iso'}")]
    assert problems[("nics.0", "no tap interface for this NIC")]
    # kldstat(8) does not exist on Linux: the vmm check says so instead of passing silently.
    assert any(field == "host" and "vmm.ko" in message for field, message in problems)


def test_vnc_without_a_password_is_refused_before_bhyve_opens_it_on_loopback(host: FakeHost) -> None:
    # A spec stored on a driver that uses no VNC password (QEMU, issue 11) carries none.
    driver = host.driver()
    data = {"name": "web13", "memory": "256M", "boot": "uefi", "graphics": {"vnc": True}}
    spec = validate_spec(data, SpecContext(vnc_password=False))
    vm_dir = host.vm_dir("web13")
    problems = blocking(driver.preflight(spec, vm_dir))
    assert [p.field for p in problems if "password" in p.message] == ["graphics.password"], problems
    generated = validate_spec(data)  # what bhyve's spec context gives it
    assert not [p for p in driver.preflight(generated, vm_dir) if p.field == "graphics.password"]


def test_preflight_reports_a_running_vm_and_plan_lists_every_command(host: FakeHost) -> None:
    driver = host.driver()
    spec = make_spec("web11", boot="bhyveload", disks=[{"size": "1G"}], graphics={"vnc": False})
    vm_dir = host.vm_dir("web11")
    disk = vm_dir / "disk0.img"
    disk.write_bytes(b"")
    attachments = Attachments(disk_paths=[str(disk)])

    plan = [c.argv for c in driver.plan(spec, vm_dir, attachments)]

    # supervisor, then what it runs: loader, bhyve, destroy after exit (reference 1.7 loop)
    assert plan[0][1:3] == ["-m", "bhype_core.drivers.supervisor"]
    assert [Path(argv[0]).name for argv in plan[1:]] == ["bhyveload", "bhyve", "bhyvectl"]
    assert plan[-1][1:] == [f"--vm={spec.instance_name}", "--destroy"]
    assert host.calls() == []  # planning runs nothing

    driver.start(spec, vm_dir, attachments)
    running = blocking(driver.preflight(spec, vm_dir, attachments))
    assert any(p.field == "name" and "already running" in p.message for p in running)
    driver.force_stop(spec, vm_dir)


def test_leftover_instance_is_reported_and_destroyed_before_the_next_start(host: FakeHost) -> None:
    # /dev/vmm/NAME without a bhyve process: a crashed bhyve or killed loader (reference 3.2).
    driver, spec = host.driver(), make_spec("web12")
    vm_dir = host.vm_dir("web12")
    (host.fake / "vmm" / spec.instance_name).touch()

    assert "leftover VM instance" in driver.status(spec, vm_dir).detail
    warnings = [p for p in driver.preflight(spec, vm_dir) if p.field == "name"]
    assert [p.severity for p in warnings] == ["warning"] and not blocking(warnings)
    driver.start(spec, vm_dir)
    driver.force_stop(spec, vm_dir)

    assert host.programs()[:2] == ["bhyvectl --destroy", "bhyve"]


def test_stats_read_bhyvectl_and_rctl_of_the_running_vm(host: FakeHost) -> None:
    """Issue 12: ``stats`` parses ``bhyvectl --get-stats`` (recorded sample, reference 3.3) and
    ``rctl -u process:PID`` (reference 4.4) of the bhyve the supervisor runs; without RACCT
    (rctl exits 1) CPU time is unknown but the bhyvectl counters still count."""
    samples = Path(__file__).resolve().parent / "samples"
    (host.fake / "get-stats").write_text((samples / "bhyvectl-get-stats.txt").read_text())
    driver, spec = host.driver(), make_spec("stats1")
    driver.rctl = str(FAKE / "rctl")
    vm_dir = host.vm_dir("stats1")
    with pytest.raises(Conflict, match="no statistics"):
        driver.stats(spec, vm_dir)
    started = driver.start(spec, vm_dir)

    without_racct = driver.stats(spec, vm_dir)
    (host.fake / "rctl-usage").write_text((samples / "rctl-usage.txt").read_text())
    stats = driver.stats(spec, vm_dir)
    driver.force_stop(spec, vm_dir)

    assert without_racct.cpu_seconds is None and without_racct.rss_bytes == 3221225472
    assert (stats.pid, stats.cpu_seconds, stats.rss_bytes) == (started.pid, 1523.0, 3221225472)
    assert stats.extra == {"vm_exits": 58823301, "hlt_exits": 20331872, "vcpu_runtime_tsc": 912233810571,
                           "resident_bytes": 3221225472, "wired_bytes": 0}
    assert ["bhyvectl", f"--vm={spec.instance_name}", "--get-stats", "--cpu=0"] in host.calls("bhyvectl")
    assert ["rctl", "-u", f"process:{started.pid}"] in host.calls("rctl")


def test_vnc_password_is_in_a_0600_file_never_in_bhyves_arguments(host: FakeHost) -> None:
    driver, spec = host.driver(), make_spec("web12", graphics={"vnc": True, "password": "s3cret8x"})
    vm_dir = host.vm_dir("web12")
    driver.start(spec, vm_dir)
    try:
        (call,) = host.calls("bhyve")
        assert not any("s3cret8x" in arg for arg in call)  # ps(1) shows every argument
        secrets = Path(call[call.index("-k") + 1])
        assert secrets == vm_dir / "vnc.conf" and secrets.read_text() == "pci.0.29.0.password=s3cret8x\n"
        assert stat.S_IMODE(secrets.stat().st_mode) == 0o600
    finally:
        driver.force_stop(spec, vm_dir)


def test_a_status_read_that_races_the_supervisors_exit_reads_its_last_word(host, monkeypatch) -> None:
    # The supervisor writes "crashed" and exits between the driver's read of state.json and its
    # liveness check: the driver saw "running" and a dead supervisor. It must read again, not
    # report a lost supervisor (seen once in a clean-clone run).
    from bhype_core.drivers import supervised

    driver, spec = host.driver(), make_spec("web11")
    vm_dir = host.vm_dir("web11")
    final = {"state": "crashed", "detail": "guest triple fault", "exit_status": 3, "supervisor_pid": 999999,
             "crash_id": "abc", "instance": spec.instance_name}
    reads = iter([{**final, "state": "running", "exit_status": None, "crash_id": None}, final])
    monkeypatch.setattr(supervised, "read_json", lambda path: next(reads, final))

    status = driver.read_status(spec.instance_name, vm_dir)

    assert (status.state, status.exit_status, status.crash_id) == (VMState.CRASHED, 3, "abc")
