"""The bhyve driver (FreeBSD): the VM spec as bhyve(8) under a supervisor, with the loader step,
per-VM UEFI NVRAM, nmdm(4) serial console, fbuf VNC on 127.0.0.1, and bhyvectl(8) for forced
power-off and instance cleanup.

Facts follow reference freebsd-host.md: 1.6 (firmware, NVRAM copy), 1.7 (exit status, SIGTERM
as ACPI power button, stop sequence), 1.8/3.2 (finding VMs), 2 (loaders), 3 (bhyvectl),
4.1 (kernel modules), 8.1 (memory sysctls), 9 (console, VNC).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from bhype_core.drivers.base import Attachments, HostCommand, Problem, VMStatus
from bhype_core.drivers.bhyve_argv import (
    BHYVE,
    BHYVECTL,
    BHYVELOAD,
    FIRMWARE_DIR,
    GRUB_BHYVE,
    BhyveResources,
    bhyve_argv,
    bhyve_spec_errors,
    bhyvectl_argv,
    bhyveload_argv,
    fbuf_secrets,
    grub_bhyve_argv,
    grub_cfg,
    grub_device_map,
)
from bhype_core.drivers.bhyve_suspend import (
    bhyve_restore_argv,
    bhyve_usage_argv,
    bhyvectl_suspend_argv,
    usage_lists_restore,
)
from bhype_core.drivers.boot_plan import BootStage, boot_plan, stage_spec
from bhype_core.drivers.capabilities import Capability, FirmwareRules, SpecCheck, VMStats
from bhype_core.drivers.preflight import already_running, attached_files, memory, vnc_port
from bhype_core.drivers.saved_state import SuspendFailed
from bhype_core.drivers.stats_parsers import (
    BHYVECTL_COUNTERS,
    bhyvectl_stats_argv,
    parse_bhyvectl_stats,
    parse_rctl_usage,
    rctl_usage_argv,
)
from bhype_core.drivers.supervised import Prepared, SupervisedDriver
from bhype_core.errors import CommandError, Conflict
from bhype_core.spec import INSTANCE_PREFIX, VMSpec

VMM_DIR = "/dev/vmm"
NVRAM_FILE = "uefi-vars.fd"  # vm-bhyve's name for the per-VM copy (reference 1.6)
RESCUE_NVRAM_FILE = "rescue-vars.fd"  # a fresh copy per rescue start (boot_plan)
SECRETS_FILE = "vnc.conf"  # bhyve -k file with the fbuf password (0600; keeps it out of ps)
FIRMWARE_PACKAGES = {"uefi": "edk2-bhyve", "uefi-csm": "uefi-edk2-bhyve-csm"}
RCTL = "/usr/bin/rctl"


class BhyveDriver(SupervisedDriver):
    """VMs as bhyve(8) processes (see the module docstring). Program paths and the
    ``/dev/vmm`` directory are parameters so the supervisor loop can be exercised with a
    stand-in bhyve on Linux.

    :param start_grace: seconds bhyve must survive to count as running (it fails device and
        memory setup within a fraction of a second, exit status 4).
    """

    name = "bhyve"
    rctl = RCTL  # rctl(8); an attribute so the bhyve tests can use a stand-in
    capabilities = frozenset({
        Capability.UEFI, Capability.UEFI_CSM, Capability.VNC_TCP, Capability.SERIAL_CONSOLE, Capability.LIVE_STATS,
    })  # fmt: skip

    def __init__(
        self,
        runner: Any,
        *,
        run_dir: Path,
        bhyve: str = BHYVE,
        bhyvectl: str = BHYVECTL,
        bhyveload: str = BHYVELOAD,
        grub_bhyve: str = GRUB_BHYVE,
        firmware_dir: str = FIRMWARE_DIR,
        vmm_dir: str = VMM_DIR,
        start_grace: float = 1.0,
        start_timeout: float = 120.0,
        python: str = sys.executable,
        launcher: bool = True,
        bootindex: bool = False,
    ) -> None:
        super().__init__(runner, run_dir=run_dir, python=python, start_timeout=start_timeout, launcher=launcher)
        self.bhyve, self.bhyvectl, self.bhyveload, self.grub_bhyve = bhyve, bhyvectl, bhyveload, grub_bhyve
        self.firmware_dir = Path(firmware_dir)
        self.vmm_dir = Path(vmm_dir)
        self.start_grace = start_grace
        self.bootindex = bootindex

    @classmethod
    def from_runtime(cls, runtime: Any) -> BhyveDriver:
        """Build from ``[bhyve]`` settings and ``<core.data_dir>/run``."""
        s = runtime.settings.section("bhyve")
        return cls(
            runtime.runner, run_dir=runtime.settings.core.data_dir / "run", bhyve=s.bhyve, bhyvectl=s.bhyvectl,
            bhyveload=s.bhyveload, grub_bhyve=s.grub_bhyve, firmware_dir=s.firmware_dir, vmm_dir=s.vmm_dir,
            start_grace=s.start_grace, start_timeout=s.start_timeout, bootindex=s.bootindex,
        )  # fmt: skip

    # -- resources ---------------------------------------------------------------------------

    def firmware(self, mode: str) -> tuple[Path, Path | None]:
        """(boot ROM, NVRAM template) of edk2-bhyve for ``uefi``/``uefi-csm`` (reference 1.6)."""
        if mode == "uefi-csm":
            return self.firmware_dir / "BHYVE_UEFI_CSM.fd", None
        return self.firmware_dir / "BHYVE_UEFI_CODE.fd", self.firmware_dir / "BHYVE_UEFI_VARS.fd"

    @staticmethod
    def nmdm_id(instance: str) -> str:
        """vm-bhyve style ``-<name>.1``: bhyve gets /dev/nmdm-<name>.1A, people the B side."""
        return f"-{instance}.1"

    def resources(
        self, spec: VMSpec, vm_dir: Path, attachments: Attachments, vnc_port: int | None,
        stage: BootStage | None = None, rescue: bool = False,
    ) -> BhyveResources:
        """The host resources bhyve_argv needs for ``spec`` (one boot ``stage`` of it; a rescue
        start boots UEFI with a fresh NVRAM copy, :mod:`~bhype_core.drivers.boot_plan`)."""
        mode = spec.boot.mode
        nvram = RESCUE_NVRAM_FILE if rescue else NVRAM_FILE
        return BhyveResources(
            disk_paths=list(attachments.disk_paths),
            taps=[tap or "" for tap in attachments.taps],
            nmdm_id=self.nmdm_id(spec.instance_name) if spec.serial else None,
            vnc_port=vnc_port,
            cdrom_path=attachments.cdrom_path,
            cloud_init_iso=attachments.cloud_init_iso,
            firmware_code=str(self.firmware(mode)[0]) if mode in ("uefi", "uefi-csm") else None,
            firmware_vars=str(vm_dir / nvram) if mode == "uefi" else None,
            device_map=str(vm_dir / "device.map") if mode == "grub" else None,
            grub_dir=str(vm_dir) if mode == "grub" and spec.boot.kernel else None,
            secrets_file=str(vm_dir / SECRETS_FILE) if fbuf_secrets(spec) else None,
            boot_cd=bool(stage and stage.cd_first),
            bootindex=self.bootindex,
        )

    def _commands(
        self, spec: VMSpec, res: BhyveResources, vm_dir: Path, prepared: Prepared
    ) -> tuple[list[str], list[str] | None]:
        """bhyve's argv and the loader's (if any) for one boot; loader files go to ``prepared``."""
        argv = bhyve_argv(spec, res)
        argv[0] = self.bhyve
        loader: list[str] | None = None
        if spec.boot.mode == "bhyveload":
            loader = [self.bhyveload, *bhyveload_argv(spec, res)[1:]]
        elif spec.boot.mode == "grub":
            prepared.files.setdefault(vm_dir / "device.map", grub_device_map(spec, res))
            if spec.boot.kernel:
                prepared.files[vm_dir / "grub.cfg"] = grub_cfg(spec)
            loader = [self.grub_bhyve, *grub_bhyve_argv(spec, res)[1:]]
        return argv, loader

    def prepare(
        self, spec: VMSpec, vm_dir: Path, attachments: Attachments, vnc_port: int | None, *, dry: bool = False
    ) -> Prepared:
        instance, mode = spec.instance_name, spec.boot.mode
        plan = boot_plan(spec, attachments.start_mode)
        rescue = plan.mode == "rescue"
        first = stage_spec(spec, plan.first)
        res = self.resources(first, vm_dir, attachments, vnc_port, plan.first, rescue)
        prepared = Prepared(config={})
        if res.secrets_file:
            prepared.files[Path(res.secrets_file)] = fbuf_secrets(spec)  # written 0600 (supervised.py)
        argv, loader = self._commands(first, res, vm_dir, prepared)
        later: dict[str, Any] | None = None
        if plan.changes:
            then = stage_spec(spec, plan.later)
            later_res = self.resources(then, vm_dir, attachments, vnc_port, plan.later, rescue)
            later_argv, later_loader = self._commands(then, later_res, vm_dir, Prepared(config={}))
            # grub-bhyve keeps the install boot's device.map: its (cd0) line is unused from
            # then on (root hd0,1) and the ISO stays in the library.
            later = {"argv": later_argv, "bhyve": {"loader_argv": later_loader}}
        if mode == "uefi" and res.firmware_vars and (rescue or not Path(res.firmware_vars).exists()):
            template = self.firmware(mode)[1]
            why = ("a fresh NVRAM for the rescue boot, so no stored boot entry wins over the CD" if rescue
                   else "create the VM's own UEFI NVRAM (bhyve(8) EXAMPLES)")
            prepared.setup.append(HostCommand(["cp", str(template), res.firmware_vars], why))
            if not Path(res.firmware_vars).exists():
                prepared.creates.append(Path(res.firmware_vars))
        destroy = [self.bhyvectl, *bhyvectl_argv(instance, "destroy")[1:]]
        if (self.vmm_dir / instance).exists():
            prepared.supervised.append(HostCommand(destroy, "free the leftover VM instance first (reference 3.2)"))
        if later is None:
            if loader:
                prepared.supervised.append(HostCommand(loader, "load the guest kernel, before every boot"))
            prepared.supervised.append(
                HostCommand(argv, "the VM (started again after each guest reboot, exit status 0)")
            )
        else:
            if loader:
                prepared.supervised.append(HostCommand(loader, "load the guest kernel from the ISO (install boot)"))
            prepared.supervised.append(HostCommand(argv, "the install boot, with the ISO"))
            prepared.supervised.append(HostCommand(destroy, "after the guest's first reboot: a fresh VM instance"))
            if later["bhyve"]["loader_argv"]:
                prepared.supervised.append(
                    HostCommand(later["bhyve"]["loader_argv"], "load the guest kernel from the disk, before every boot")
                )
            prepared.supervised.append(
                HostCommand(later["argv"], "the VM without the ISO (started again after each guest reboot)")
            )
        prepared.supervised.append(HostCommand(destroy, "free the VM instance after bhyve exits"))
        consoles: dict[str, dict[str, Any]] = {}
        if spec.graphics.vnc:
            consoles["vnc"] = {"host": "127.0.0.1", "port": vnc_port, "password": bool(spec.graphics.password)}
        if spec.serial:
            consoles["serial"] = {"device": res.console("B")}
        prepared.config = {
            "kind": "bhyve",
            "instance": instance,
            "argv": argv,
            "start_timeout": self.start_timeout,
            "consoles": consoles,
            "bhyve": {
                "bhyvectl": self.bhyvectl,
                "vmm_dir": str(self.vmm_dir),
                "loader_argv": loader,
                "loader_timeout": self.start_timeout,
                "start_grace": self.start_grace,
            },
        }
        if later is not None:
            prepared.config["after_first_reboot"] = later
        return prepared

    def hypervisor_markers(self, instance: str) -> tuple[str, ...]:
        # bhyve's setproctitle makes ps show "bhyve: NAME (bhyve)" (reference 1.8).
        return (instance,)

    # -- checks ------------------------------------------------------------------------------

    def _module_loaded(self, module: str) -> Problem | None:
        # kldstat(8) -q -m: exit 0 when the module is present (reference 4.1).
        try:
            result = self.runner.run(["kldstat", "-q", "-m", module], timeout=10, check=False)
        except CommandError as exc:
            return Problem(
                "host", f"cannot check for {module}.ko: {exc.reason or exc}", "run the bhyve driver on FreeBSD"
            )
        if result.returncode != 0:
            return Problem("host", f"{module}.ko is not loaded", f"kldload {module} && sysrc kld_list+={module}")
        return None

    def _memory(self) -> tuple[int | None, int | None]:
        # reference 8.1/8.4: physmem; available = (free + inactive) pages x pagesize.
        argv = ["sysctl", "-n", "hw.physmem", "hw.pagesize", "vm.stats.vm.v_free_count", "vm.stats.vm.v_inactive_count"]
        try:
            result = self.runner.run(argv, timeout=10, check=False)
        except CommandError:
            return None, None
        values = result.stdout.split()
        if result.returncode != 0 or len(values) != 4 or not all(v.isdigit() for v in values):
            return None, None
        physmem, pagesize, free, inactive = (int(v) for v in values)
        return physmem, (free + inactive) * pagesize

    def preflight(self, spec: VMSpec, vm_dir: Path, attachments: Attachments | None = None) -> list[Problem]:
        vm_dir = Path(vm_dir).absolute()
        attachments = attachments or Attachments()
        status = self.status(spec, vm_dir)
        problems = already_running(spec, status)
        problems += [Problem(path or "spec", message) for path, message in bhyve_spec_errors(spec)]
        if spec.graphics.vnc and spec.graphics.password is None:
            # fbuf listens on loopback TCP, which every local account can reach (issue 11). A
            # spec stored where the driver used no password (QEMU) has none: never start open.
            problems.append(Problem(
                "graphics.password", "bhyve's VNC listens on loopback TCP, open to every local account, "
                "and this VM has no VNC password", "edit the VM (bhyve generates one) or set graphics.password",
            ))  # fmt: skip
        for module in ("vmm", "nmdm") if spec.serial else ("vmm",):
            problem = self._module_loaded(module)
            if problem:
                problems.append(problem)
        programs = [(self.bhyve, "bhyve"), (self.bhyvectl, "bhyvectl")]
        if spec.boot.mode == "bhyveload":
            programs.append((self.bhyveload, "bhyveload"))
        for path, what in programs:
            if not os.path.exists(path):
                problems.append(
                    Problem("host", f"{what} not found at {path}", "bhyve is part of the FreeBSD base system (amd64)")
                )
        if spec.boot.mode == "grub" and not os.path.exists(self.grub_bhyve):
            problems.append(
                Problem("boot.mode", f"grub-bhyve not found at {self.grub_bhyve}", "pkg install grub2-bhyve")
            )
        if spec.boot.mode in FIRMWARE_PACKAGES:
            code, template = self.firmware(spec.boot.mode)
            nvram = vm_dir / NVRAM_FILE
            for needed in [code, *([template] if template and not nvram.exists() else [])]:
                if not needed.is_file():
                    problems.append(
                        Problem(
                            "boot.mode",
                            f"firmware not found at {needed}",
                            f"pkg install {FIRMWARE_PACKAGES[spec.boot.mode]}",
                        )
                    )
        for index in range(len(spec.nics)):
            taps = attachments.taps
            if index >= len(taps) or not taps[index]:
                problems.append(
                    Problem(
                        f"nics.{index}",
                        "no tap interface for this NIC",
                        "attach a tap that is a member of an existing bridge",
                    )
                )
        problems += attached_files(spec, attachments)
        problems += vnc_port(spec, lambda: self.ports.peek(vm_dir, self.instance_active))
        total, available = self._memory()
        problems += memory(spec, total, available, warn_only_available=True)
        if not status.active and (self.vmm_dir / spec.instance_name).exists():
            problems.append(
                Problem(
                    "name",
                    f"a leftover VM instance {self.vmm_dir / spec.instance_name} exists",
                    "none: start destroys it first",
                    severity="warning",
                )
            )
        return problems

    # -- stop and reconcile ------------------------------------------------------------------

    def read_status(self, instance: str, vm_dir: Path) -> VMStatus:
        status = super().read_status(instance, vm_dir)
        leftover = self.vmm_dir / instance
        if not status.active and leftover.exists():
            # /dev/vmm/NAME outlives a crashed bhyve (reference 1.8): say so; start destroys it.
            note = f"leftover VM instance {leftover} (destroyed at the next start)"
            status.detail = f"{status.detail}\n{note}" if status.detail else note
        return status

    def request_shutdown(self, instance: str, vm_dir: Path, status: VMStatus) -> None:
        if status.pid:
            # bhyve(8) SIGNAL HANDLING: SIGTERM triggers the ACPI power button (reference 1.7).
            self.runner.run(["kill", "-s", "TERM", str(status.pid)], timeout=10, check=False)

    def power_off(self, instance: str, vm_dir: Path, status: VMStatus) -> None:
        # bhyvectl(8) --force-poweroff: bhyve then exits 1 and the supervisor destroys the VM.
        self.runner.run([self.bhyvectl, *bhyvectl_argv(instance, "force-poweroff")[1:]], timeout=30, check=False)

    def after_stop(self, instance: str, vm_dir: Path) -> None:
        # The supervisor destroys the instance after bhyve exits; when there was none (it was
        # gone), do it here (reference 1.7: force-poweroff -> wait -> bhyvectl --destroy).
        if (self.vmm_dir / instance).exists():
            self.runner.run([self.bhyvectl, *bhyvectl_argv(instance, "destroy")[1:]], timeout=60, check=False)

    def running_instances(self) -> list[str]:
        names = set(super().running_instances())
        try:
            entries = [e for e in os.listdir(self.vmm_dir) if e.startswith(INSTANCE_PREFIX)]
        except OSError:
            entries = []
        for name in entries:
            if name in names:
                continue
            # A /dev/vmm entry alone proves nothing (reference 1.8); a bhyve process with the
            # title "bhyve: NAME" does (vm-bhyve's pgrep -fx).
            try:
                found = self.runner.run(["pgrep", "-f", "-x", f"bhyve: {name}"], timeout=10, check=False)
            except CommandError:
                continue
            if found.returncode == 0:
                names.add(name)
        return sorted(names)

    # -- suspend and resume ----------------------------------------------------------------

    def suspend_supported(self) -> bool:
        """Detected, not assumed: ``bhyve -h`` describes ``-r`` only on a ``BHYVE_SNAPSHOT``
        build (:mod:`~bhype_core.drivers.bhyve_suspend`). Asked once per driver; a yes adds
        ``SUSPEND`` to this driver's capabilities."""
        found = self.__dict__.get("_snapshot_build")
        if found is None:
            try:
                result = self.runner.run(bhyve_usage_argv(self.bhyve), timeout=10, check=False)
                found = usage_lists_restore(result.stdout + result.stderr)
            except CommandError:
                found = False  # no bhyve to ask (not FreeBSD): no suspend
            self.__dict__["_snapshot_build"] = found
            if found:
                self.capabilities = self.capabilities | {Capability.SUSPEND}
        return bool(found)

    def save_state(self, instance: str, vm_dir: Path, status: VMStatus, path: Path, timeout: float) -> None:
        """bhyvectl(8) ``--suspend=FILE``: bhyve saves the guest to FILE, FILE.kern (and
        FILE.meta), destroys the VM and exits 0 (the supervisor records a suspend). A non-zero
        exit means nothing was saved and the guest runs on."""
        argv = bhyvectl_suspend_argv(self.bhyvectl, instance, str(path))
        try:
            result = self.runner.run(argv, timeout=timeout, check=False)
        except CommandError as exc:
            raise SuspendFailed(f"bhyvectl --suspend for {instance} failed: {exc.reason or exc}") from None
        if result.returncode != 0:
            said = (result.stderr or result.stdout).strip().replace("\n", " | ")[-300:]
            raise SuspendFailed(f"bhyvectl --suspend for {instance} exited {result.returncode}: {said or 'no output'}")

    def restore_argv(self, argv: list[str], path: str) -> list[str]:
        """bhyve(8) ``-r FILE`` with the identical device list; no loader runs (the supervisor
        only frees a leftover instance first)."""
        return bhyve_restore_argv(argv, path)

    # -- capabilities ------------------------------------------------------------------------

    def firmware_rules(self) -> FirmwareRules:
        """edk2-bhyve's ``BHYVE_UEFI_VARS.fd`` copied to vm-bhyve's ``uefi-vars.fd`` (reference 1.6)."""
        template = self.firmware("uefi")[1]
        assert template is not None  # uefi (not uefi-csm) always has a vars template
        return FirmwareRules(template, NVRAM_FILE, f"pkg install {FIRMWARE_PACKAGES['uefi']}")

    def spec_checks(self) -> list[SpecCheck]:
        """The capability check plus bhyve's own rules (VNC needs UEFI, loader needs a disk …)."""
        return [*super().spec_checks(), bhyve_spec_errors]

    def stats(self, spec: VMSpec, vm_dir: Path) -> VMStats:
        """``bhyvectl --get-stats`` (vCPU 0: VM exits, backed guest RAM; reference 3.3) and, where
        RACCT is enabled, ``rctl -u process:PID`` for CPU time (reference 4.4; without
        ``kern.racct.enable=1`` rctl fails and CPU time is ``None``)."""
        status = self.status(spec, Path(vm_dir).absolute())
        if status.pid is None:
            raise Conflict(f"VM {spec.name} is {status.state.value}: no statistics without a running bhyve")
        answer = self.runner.run(bhyvectl_stats_argv(self.bhyvectl, spec.instance_name), timeout=30)
        counters = parse_bhyvectl_stats(answer.stdout)
        extra: dict[str, int | float] = {
            key: counters[name] for name, key in BHYVECTL_COUNTERS.items() if name in counters
        }
        try:
            usage = self.runner.run(rctl_usage_argv(self.rctl, status.pid), timeout=10, check=False)
            racct = parse_rctl_usage(usage.stdout) if usage.returncode == 0 else {}
        except CommandError:  # rctl not installed (a kernel without RACCT): CPU time unknown
            racct = {}
        cpu = racct.get("cputime")
        return VMStats(
            pid=status.pid,
            cpu_seconds=float(cpu) if cpu is not None else None,
            rss_bytes=counters.get("Resident memory", racct.get("memoryuse")),
            extra=extra,
        )
