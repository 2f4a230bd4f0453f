"""The QEMU driver (Linux development/test host): the VM spec as qemu-system-x86_64 under a
supervisor, QMP for control, VNC and the serial console on unix sockets.

VNC listens on ``vnc.sock`` in the VM's private socket directory (``-vnc unix:PATH``), never on
a TCP port: a loopback port is open to every local account, a socket in a 0700/0750 root
directory only to root and to what root hands it to, so the console is reachable only through
bHype's bridge and needs no VNC password (none is set, stored in the supervisor's config or
sent over QMP). Issue 11; reference linux-test-host.md ("``-vnc unix:PATH``").

Two QMP monitors: the supervisor holds ``qmp.sock`` for the whole run (it needs the
``SHUTDOWN`` event's reason to tell a reboot from a power-off), and the driver talks to
``qmp-ctl.sock`` (QEMU accepts one client per monitor). Facts: qemu(1) of QEMU 7.2, QEMU's
``docs/interop/qmp-spec.rst`` and reference linux-test-host.md.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from bhype_core.drivers.base import Attachments, HostCommand, Problem, VMStatus
from bhype_core.drivers.boot_plan import boot_plan, stage_spec
from bhype_core.drivers.capabilities import Capability, FirmwareRules, FrozenDisks, VMStats
from bhype_core.drivers.preflight import already_running, attached_files, linux_memory, memory
from bhype_core.drivers.qemu_argv import OVMF_CANDIDATES, QEMU, QemuResources, find_ovmf, qemu_argv
from bhype_core.drivers.qmp import QMPClient, QMPClosed, QMPError
from bhype_core.drivers.saved_state import SuspendFailed
from bhype_core.drivers.stats_parsers import parse_blockstats, parse_proc, proc_argv
from bhype_core.drivers.supervised import Prepared, SupervisedDriver
from bhype_core.drivers.supervisor_kinds import wait_migration
from bhype_core.errors import Conflict
from bhype_core.safe_files import open_regular
from bhype_core.spec import VMSpec
from bhype_core.vm.firmware import FirmwareMissing

SOCKET_PATH_MAX = 100  # sun_path holds 108 bytes (unix(7)); keep a margin
QMP_TIMEOUT = 5.0


class QemuDriver(SupervisedDriver):
    """VMs as ``qemu-system-x86_64`` processes (see the module docstring).

    :param binary: the QEMU system emulator.
    :param accel: ``tcg``, ``kvm``, or ``auto`` (probe KVM once, as ``bhype doctor`` does: a
        nested KVM that hangs is detected by running a probe guest, not by /dev/kvm).
    :param machine: ``q35`` or ``pc``. :param cpu_model: ``-cpu`` value (QEMU's default if None).
    """

    name = "qemu"
    vnc_over_tcp = False  # -vnc unix:PATH (module docstring)
    # uefi-csm boots with SeaBIOS (qemu_argv), the legacy boot bhyve's CSM ROM gives.
    capabilities = frozenset({
        Capability.UEFI, Capability.UEFI_CSM, Capability.VNC_UNIX_SOCKET, Capability.SERIAL_CONSOLE,
        Capability.LIVE_STATS, Capability.DISK_STATS, Capability.SUSPEND, Capability.CONSISTENT_POINT,
        Capability.DIRTY_TRACKING,
    })  # fmt: skip

    def __init__(
        self,
        runner: Any,
        *,
        run_dir: Path,
        binary: str = QEMU,
        accel: str = "auto",
        machine: str = "q35",
        cpu_model: str | None = None,
        python: str = sys.executable,
        launcher: bool = True,
        start_timeout: float = 60.0,
        ovmf: tuple[tuple[str, str], ...] = OVMF_CANDIDATES,
    ) -> None:
        super().__init__(runner, run_dir=run_dir, python=python, start_timeout=start_timeout, launcher=launcher)
        self.binary = binary
        self.accel = accel
        self.machine = machine
        self.cpu_model = cpu_model
        self.ovmf = ovmf
        self._accel_found: str | None = None

    @classmethod
    def from_runtime(cls, runtime: Any) -> QemuDriver:
        """Build from ``[qemu]`` settings and ``<core.data_dir>/run``."""
        settings = runtime.settings.section("qemu")
        return cls(
            runtime.runner,
            run_dir=runtime.settings.core.data_dir / "run",
            binary=settings.binary,
            accel=settings.accel,
            machine=settings.machine,
            cpu_model=settings.cpu_model,
            start_timeout=settings.start_timeout,
        )

    # -- resources ---------------------------------------------------------------------------

    def effective_accel(self) -> str:
        """``tcg`` or ``kvm``; ``auto`` runs the doctor's KVM probe once per driver."""
        if self.accel != "auto":
            return self.accel
        if self._accel_found is None:
            from bhype_core.builtins.doctor_linux import check_kvm

            self._accel_found = "kvm" if check_kvm(self.runner, self.binary).ok else "tcg"
        return self._accel_found

    def socket_dir(self, vm_dir: Path) -> Path:
        """Where the VM's unix sockets live: ``vm_dir`` when its paths fit ``sun_path``, else a
        short per-VM directory under the run directory or /tmp."""
        digest = hashlib.sha256(str(vm_dir).encode()).hexdigest()[:12]
        for candidate in (vm_dir, self.run_dir / "s" / digest, Path(tempfile.gettempdir()) / "bhype-s" / digest):
            if len(str(candidate / "qmp-ctl.sock")) <= SOCKET_PATH_MAX:
                return candidate
        raise ValueError(f"no short enough directory for the unix sockets of {vm_dir}")

    def ctl_socket(self, vm_dir: Path) -> Path:
        """The driver's QMP monitor."""
        return self.socket_dir(vm_dir) / "qmp-ctl.sock"

    def prepare(
        self, spec: VMSpec, vm_dir: Path, attachments: Attachments, vnc_port: int | None, *, dry: bool = False
    ) -> Prepared:
        accel = self.accel if self.accel != "auto" else self._accel_found
        if accel is None:
            accel = "tcg" if dry else self.effective_accel()  # plan(): no probe, show the fallback
        sockets = self.socket_dir(vm_dir)
        setup: list[HostCommand] = []
        creates: list[Path] = []
        code = vars_copy = None
        if spec.boot.mode == "uefi":
            found = find_ovmf(self.ovmf)
            if found is None:
                raise FirmwareMissing(f"UEFI firmware not found at {self.ovmf[0][0]} (apt-get install ovmf); "
                                      "needed for boot mode uefi")
            code, template = found
            vars_copy = str(vm_dir / "OVMF_VARS.fd")  # per-VM NVRAM, like bhyve's uefi-vars.fd
            if not Path(vars_copy).exists():
                setup.append(HostCommand(["cp", template, vars_copy], "create the VM's own UEFI variable store"))
                creates.append(Path(vars_copy))
        if sockets != vm_dir:
            setup.insert(0, HostCommand(["mkdir", "-p", "-m", "700", str(sockets)], "directory for the VM's sockets"))
        resources = QemuResources(
            qmp_socket=str(sockets / "qmp.sock"),
            disk_paths=list(attachments.disk_paths),
            taps=list(attachments.taps),
            hostfwd=dict(attachments.hostfwd),
            accel=accel,  # type: ignore[arg-type]
            machine=self.machine,  # type: ignore[arg-type]
            cpu_model=self.cpu_model,
            vnc_socket=str(sockets / "vnc.sock") if spec.graphics.vnc else None,
            serial_socket=str(sockets / "serial.sock") if spec.serial else None,
            serial_log=str(vm_dir / "serial.log") if spec.serial else None,
            cdrom_path=attachments.cdrom_path,
            cloud_init_iso=attachments.cloud_init_iso,
            firmware_code=code,
            firmware_vars=vars_copy,
            binary=self.binary,
        )
        ctl = str(sockets / "qmp-ctl.sock")
        monitor = ["-qmp", f"unix:{ctl},server=on,wait=off"]
        plan = boot_plan(spec, attachments.start_mode)
        first = replace(resources, boot_cd=plan.first.cd_first)
        argv = [*qemu_argv(stage_spec(spec, plan.first), first), *monitor]
        later = None
        if plan.changes:  # an install: the ISO is gone once the guest first reboots (boot_plan)
            later = [*qemu_argv(stage_spec(spec, plan.later), replace(resources, boot_cd=plan.later.cd_first)),
                     *monitor]
        consoles: dict[str, dict[str, Any]] = {}
        if spec.graphics.vnc:
            consoles["vnc"] = {"unix": resources.vnc_socket, "password": False}
        if spec.serial:
            consoles["serial"] = {"unix": resources.serial_socket, "log": resources.serial_log}
        config = {
            "kind": "qemu",
            "instance": spec.instance_name,
            "argv": argv,
            "start_timeout": self.start_timeout,
            "consoles": consoles,
            "qemu": {
                "qmp_socket": resources.qmp_socket,
                "sockets": [
                    resources.qmp_socket,
                    ctl,
                    *([resources.vnc_socket] if resources.vnc_socket else []),
                    *([resources.serial_socket] if spec.serial else []),
                ],
            },
        }
        if later is not None:
            config["after_first_reboot"] = {"argv": later}
        kvm = "; -accel kvm instead when the KVM probe finds it usable" if (
            self.accel == "auto" and self._accel_found is None) else ""
        if later is None:
            supervised = [HostCommand(argv, "the VM (restarted by the supervisor after each guest reboot)" + kvm)]
        else:
            supervised = [HostCommand(argv, "the install boot, with the ISO first" + kvm),
                          HostCommand(later, "after the guest's first reboot: the VM without the ISO" + kvm)]
        return Prepared(config=config, setup=setup, creates=creates, supervised=supervised)

    def hypervisor_markers(self, instance: str) -> tuple[str, ...]:
        return (instance,)  # qemu_argv passes "-name <instance>"

    # -- checks ------------------------------------------------------------------------------

    def preflight(self, spec: VMSpec, vm_dir: Path, attachments: Attachments | None = None) -> list[Problem]:
        vm_dir = Path(vm_dir).absolute()
        attachments = attachments or Attachments()
        problems = already_running(spec, self.status(spec, vm_dir))
        if shutil.which(self.binary) is None:
            problems.append(Problem("host", f"{self.binary} not found", "apt-get install qemu-system-x86"))
        if spec.boot.mode == "uefi" and find_ovmf(self.ovmf) is None:
            problems.append(
                Problem("boot.mode", f"UEFI firmware not found at {self.ovmf[0][0]}", "apt-get install ovmf")
            )
        if self.accel == "kvm" and not Path("/dev/kvm").exists():
            problems.append(
                Problem(
                    "host",
                    "accel is kvm but /dev/kvm does not exist",
                    'load kvm_intel/kvm_amd or set [qemu] accel = "tcg"',
                )
            )
        if spec.graphics.vnc and spec.graphics.wait:
            # bhyve's fbuf "wait" holds the guest until a viewer connects; QEMU has no such option.
            problems.append(
                Problem(
                    "graphics.wait",
                    "the QEMU driver cannot wait for a VNC viewer: the guest starts at once",
                    "open the console right after starting, or use bhyve on FreeBSD",
                    severity="warning",
                )
            )
        problems += attached_files(spec, attachments)
        total, available = linux_memory()
        problems += memory(spec, total, available, warn_only_available=False)
        return problems

    # -- stop --------------------------------------------------------------------------------

    def _qmp(self, vm_dir: Path, command: str) -> None:
        with QMPClient(self.ctl_socket(vm_dir), timeout=QMP_TIMEOUT) as client:
            try:
                client.execute(command)
            except QMPClosed:
                pass  # quit: QEMU may close the monitor before it answers

    def request_shutdown(self, instance: str, vm_dir: Path, status: VMStatus) -> None:
        try:
            self._qmp(vm_dir, "system_powerdown")  # ACPI power button
        except QMPError as exc:
            raise OSError(f"QMP system_powerdown: {exc}") from None

    def power_off(self, instance: str, vm_dir: Path, status: VMStatus) -> None:
        try:
            self._qmp(vm_dir, "quit")
        except QMPError:
            if status.pid:  # the monitor does not answer: end the process
                self.runner.run(["kill", "-s", "KILL", str(status.pid)], timeout=10, check=False)

    # -- suspend and resume ------------------------------------------------------------------

    def save_state(self, instance: str, vm_dir: Path, status: VMStatus, path: Path, timeout: float) -> None:
        """Suspend to disk through QMP on the driver's monitor: ``stop`` (the CPUs, so the
        guest's state is one moment), ``getfd`` with the state file this process opened (0600,
        never through a symlink), ``migrate`` to ``fd:`` (QEMU 7.2 has no ``file:`` URI and
        ``exec:`` would be a shell), ``query-migrate`` until ``completed``, then ``quit``. On
        any failure the migration is cancelled and ``cont`` lets the guest run on. QMP
        reference: QEMU's ``qapi/migration.json``, ``qapi/misc.json``."""
        deadline = time.monotonic() + timeout
        fd = open_regular(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode=0o600, single_link=True)
        try:
            os.fchmod(fd, 0o600)
            with QMPClient(self.ctl_socket(vm_dir), timeout=QMP_TIMEOUT) as client:
                try:
                    client.execute("stop")
                    client.pass_fd("bhype-suspend", fd)
                    client.execute("migrate", {"uri": "fd:bhype-suspend"})
                    wait_migration(client, deadline, "saving the guest")
                except QMPError as exc:
                    self._resume_after_failure(client)
                    raise SuspendFailed(f"QEMU could not save VM {instance}: {exc.message}; it runs on") from None
                try:
                    client.execute("quit")
                except QMPClosed:
                    pass  # QEMU may close the monitor before it answers
        except QMPError as exc:
            raise SuspendFailed(f"QEMU could not save VM {instance}: {exc.message}") from None
        finally:
            os.close(fd)

    @staticmethod
    def _resume_after_failure(client: QMPClient) -> None:
        for command in ("migrate_cancel", "cont"):
            try:
                client.execute(command)
            except QMPError:
                pass

    def restore_argv(self, argv: list[str], path: str) -> list[str]:
        """The same command line plus ``-incoming defer`` (qemu(1)): QEMU waits for the
        supervisor to feed it the saved state over QMP (``migrate-incoming``) instead of
        booting. The device list is the one the guest was saved under (checked before)."""
        return [*argv, "-incoming", "defer"]

    # -- capabilities ------------------------------------------------------------------------

    def firmware_rules(self) -> FirmwareRules:
        """OVMF: the vars image matching the code image QEMU is given (``find_ovmf``), copied
        to ``OVMF_VARS.fd`` in the VM directory (the name :meth:`prepare` uses)."""
        found = find_ovmf(self.ovmf)
        template = found[1] if found else self.ovmf[0][1]
        return FirmwareRules(Path(template), "OVMF_VARS.fd", "apt-get install ovmf")

    def stats(self, spec: VMSpec, vm_dir: Path) -> VMStats:
        """CPU time and RSS of the QEMU process (proc(5) through the runner) and per-drive
        counters from QMP ``query-blockstats`` on the driver's monitor."""
        vm_dir = Path(vm_dir).absolute()
        status = self.status(spec, vm_dir)
        if status.pid is None:
            raise Conflict(f"VM {spec.name} is {status.state.value}: no statistics without a running QEMU")
        proc = self.runner.run(proc_argv(status.pid), timeout=10)
        cpu, rss = parse_proc(proc.stdout, self._clock_ticks())
        try:
            with QMPClient(self.ctl_socket(vm_dir), timeout=QMP_TIMEOUT) as client:
                disks = parse_blockstats(client.execute("query-blockstats"))
        except (QMPError, OSError):
            disks = {}  # the monitor is busy or QEMU is exiting: CPU and memory still count
        return VMStats(pid=status.pid, cpu_seconds=cpu, rss_bytes=rss, disks=disks)

    def _clock_ticks(self) -> int:
        """``getconf CLK_TCK`` on the runner's host (the unit of proc(5) utime/stime), once."""
        ticks = self.__dict__.get("_clk_tck")
        if ticks is None:
            answer = self.runner.run(["getconf", "CLK_TCK"], timeout=10, check=False)
            ticks = int(answer.stdout.strip()) if answer.returncode == 0 and answer.stdout.strip().isdigit() else 100
            self.__dict__["_clk_tck"] = ticks
        return int(ticks)

    # -- consistent point (issue 16) ---------------------------------------------------------

    def _freezer(self, spec: VMSpec, vm_dir: Path, disk_paths: Any) -> Any:
        from bhype_core.drivers.qemu_freeze import QemuFreezer

        return QemuFreezer(self.runner, self.ctl_socket(Path(vm_dir).absolute()), Path(vm_dir).absolute(),
                           disk_paths, qemu_img=str(Path(self.binary).with_name("qemu-img"))
                           if "/" in self.binary else "qemu-img")

    def freeze_disks(self, spec: VMSpec, vm_dir: Path, disk_paths: Any) -> FrozenDisks:
        """QMP overlays taken in one transaction (:mod:`bhype_core.drivers.qemu_freeze`).

        :raises Conflict: the VM is not running."""
        status = self.status(spec, Path(vm_dir).absolute())
        if status.pid is None:
            raise Conflict(f"VM {spec.name} is {status.state.value}: nothing to freeze")
        return self._freezer(spec, vm_dir, disk_paths).freeze()

    def thaw_disks(self, spec: VMSpec, vm_dir: Path, frozen: FrozenDisks) -> None:
        """Commit the overlays back and pivot (offline with qemu-img when QEMU is gone)."""
        self._freezer(spec, vm_dir, [str(p) for p in frozen.disks.values()]).thaw(frozen)

    # -- dirty tracking (issue 17) -----------------------------------------------------------

    def track_dirty(self, spec: VMSpec, vm_dir: Path, disk_paths: Any) -> Any:
        """QMP dirty bitmaps read through QEMU's NBD server (:mod:`bhype_core.drivers.qemu_dirty`).

        :raises Conflict: the VM is not running."""
        from bhype_core.drivers.qemu_dirty import QemuDirtyTracker

        vm_dir = Path(vm_dir).absolute()
        if self.status(spec, vm_dir).pid is None:
            raise Conflict(f"VM {spec.name} is not running: nothing to track")
        qemu_img = str(Path(self.binary).with_name("qemu-img")) if "/" in self.binary else "qemu-img"
        return QemuDirtyTracker(self.runner, self.ctl_socket(vm_dir), self.socket_dir(vm_dir) / "nbd-dirty.sock",
                                disk_paths, qemu_img=qemu_img)
