"""The hypervisor driver interface: what bhyve (FreeBSD) and QEMU (Linux) both provide."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from bhype_core.drivers.capabilities import (
    Capability,
    FirmwareRules,
    FrozenDisks,
    SpecCheck,
    VMStats,
    capability_errors,
)
from bhype_core.drivers.dirty import DirtyTracker
from bhype_core.errors import BhypeError, NotSupported
from bhype_core.events import Event
from bhype_core.spec import VMSpec


class VMState(StrEnum):
    """Where a VM is in its life, as the host sees it."""

    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    CRASHED = "crashed"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Problem:
    """A preflight finding: what is wrong (``field`` names the spec part) and how to fix it.

    ``severity`` ``"error"`` blocks a start; ``"warning"`` is shown but does not (e.g. memory
    that the ZFS ARC may still give back).
    """

    field: str
    message: str
    fix: str = ""
    severity: str = "error"


def blocking(problems: Sequence[Problem]) -> list[Problem]:
    """The problems that must stop a start (severity ``error``)."""
    return [p for p in problems if p.severity == "error"]


@dataclass(frozen=True)
class Attachments:
    """Host paths the caller (storage, ISO library, switches) resolved for one start.

    :param disk_paths: backing file or device per ``spec.disks`` entry, same order.
    :param cdrom_path: the ISO file for ``spec.cdrom``.
    :param cloud_init_iso: a NoCloud seed ISO to attach, if any.
    :param taps: per NIC a tap interface (bhyve needs one per NIC; QEMU uses user
        networking for a NIC without one).
    :param hostfwd: QEMU user networking forwards per NIC index (``tcp:127.0.0.1:2222-:22``).
    :param start_mode: ``normal``, ``install`` or ``rescue``: what this start boots first and
        after the guest's first reboot (:mod:`bhype_core.drivers.boot_plan`).
    :param restore_from: resume the guest from this saved state (what :meth:`HypervisorDriver.suspend`
        wrote) instead of booting it; only with ``start_mode`` ``normal``.
    """

    disk_paths: Sequence[str] = ()
    cdrom_path: str | None = None
    cloud_init_iso: str | None = None
    taps: Sequence[str | None] = ()
    hostfwd: Mapping[int, Sequence[str]] = field(default_factory=dict)
    start_mode: str = "normal"
    restore_from: str | None = None


class HypervisorFailed(BhypeError):
    """The hypervisor did not start (or a stop failed): its exit status and the last lines
    of its stderr are in the message and in ``exit_status``/``detail``."""

    code = "hypervisor_failed"
    http_status = 500

    def __init__(self, message: str, exit_status: int | None = None, detail: str = "") -> None:
        super().__init__(message)
        self.exit_status = exit_status
        self.detail = detail

    def to_dict(self) -> dict:
        body = super().to_dict()
        body["error"].update(exit_status=self.exit_status, detail=self.detail)
        return body


@dataclass(frozen=True)
class HostCommand:
    """One host command a start would run, with why (``bhype vm show-command``)."""

    argv: list[str]
    purpose: str


@dataclass
class VMStatus:
    """What the driver knows about one VM right now.

    ``exit_status`` and ``detail`` (last lines of the hypervisor's stderr/console log) explain a
    VM that stopped or crashed; ``consoles`` maps ``vnc``/``serial`` to how to reach them
    (``{"vnc": {"host": "127.0.0.1", "port": 5901}}`` or ``{"vnc": {"unix": "/path"}}``).

    ``restarts`` counts guest reboots the supervisor restarted the hypervisor for,
    ``history`` holds the recent hypervisor exits (``at``, ``exit_status``, ``meaning``,
    ``outcome``), ``crash_id`` identifies the crash a ``crashed`` state reports.
    ``suspended`` is the saved state of a suspended VM (``path``, ``at``, ``size``; state
    ``stopped``): its next start resumes the guest (:mod:`bhype_core.drivers.saved_state`).
    """

    state: VMState
    pid: int | None = None
    exit_status: int | None = None
    detail: str = ""
    consoles: dict[str, dict[str, Any]] = field(default_factory=dict)
    supervisor_pid: int | None = None
    restarts: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    crash_id: str | None = None
    suspended: dict[str, Any] | None = None

    @property
    def active(self) -> bool:
        """True while a hypervisor process exists (starting, running or stopping)."""
        return self.state in (VMState.STARTING, VMState.RUNNING, VMState.STOPPING)

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "pid": self.pid,
            "exit_status": self.exit_status,
            "detail": self.detail,
            "consoles": self.consoles,
            "supervisor_pid": self.supervisor_pid,
            "restarts": self.restarts,
            "history": self.history,
            "crash_id": self.crash_id,
            "suspended": self.suspended,
        }


CrashListener = Callable[[str, VMStatus], None]


def crash_event(vm_name: str, status: VMStatus) -> Event:
    """The ``vm.crashed`` event for a crash a driver reported (subject ``vm:<name>``)."""
    first = status.detail.splitlines()[0] if status.detail else "no detail recorded"
    return Event(
        kind="vm.crashed",
        message=f"VM {vm_name} crashed: {first}",
        severity="error",
        subject=f"vm:{vm_name}",
        data={"exit_status": status.exit_status, "detail": status.detail, "crash_id": status.crash_id},
    )


class HypervisorDriver(ABC):
    """A hypervisor on one platform. Built by a :class:`~bhype_core.registry.DriverEntry`
    factory from the runtime; every host command goes through ``runtime.runner``.

    ``vm_dir`` is the VM's private directory (pid/state files, NVRAM copy, logs, sockets),
    owned by the caller and existing before :meth:`start`.

    A driver declares what it can do (:attr:`capabilities`, :meth:`firmware_rules`,
    :meth:`spec_checks`, :meth:`stats`); the VM layer asks it instead of testing platform
    names, so a driver registered by a third party supplies its own rules (issue 12).
    """

    name: str = ""
    #: What this driver can do beyond start/stop/status; a spec asking for something missing
    #: is refused at plan time (:func:`~bhype_core.drivers.capabilities.capability_errors`).
    capabilities: frozenset[Capability] = frozenset()

    def firmware_rules(self) -> FirmwareRules | None:
        """Where the UEFI variable store template is and what the per-VM copy is called;
        ``None`` when the driver keeps no NVRAM (then it must not declare ``UEFI``)."""
        return None

    def spec_checks(self) -> list[SpecCheck]:
        """Rules this hypervisor adds to the platform-independent spec (each a ``SpecContext``
        check returning ``(field path, message)`` pairs). The default refuses what
        :attr:`capabilities` lacks; drivers extend the list (bhyve: VNC needs UEFI …)."""
        return [self.capability_check]

    def capability_check(self, spec: VMSpec) -> list[tuple[str, str]]:
        """The spec fields that ask for a capability this driver does not declare."""
        return capability_errors(spec, self.capabilities, f"driver {self.name or type(self).__name__}")

    def stats(self, spec: VMSpec, vm_dir: Path) -> VMStats:
        """One sample of the running VM's CPU time, memory and disk counters (what the platform
        has; absent values are ``None``).

        :raises NotSupported: the driver does not declare ``LIVE_STATS``.
        :raises Conflict: the VM is not running.
        """
        raise NotSupported("live stats", f"driver {self.name or type(self).__name__}")

    @property
    def crash_listeners(self) -> list[CrashListener]:
        """The listeners :meth:`add_crash_listener` added (created on first use, so
        subclasses need not call ``super().__init__()``)."""
        return self.__dict__.setdefault("_crash_listeners", [])

    def add_crash_listener(self, listener: CrashListener) -> None:
        """Call ``listener(vm_name, status)`` once per crash this driver observes.

        A crash happens in the supervisor process; the driver notices it when :meth:`status`
        (or :meth:`stop`, :meth:`start`) reads the state file, and reports each crash exactly
        once across all processes sharing the host. The lifecycle layer wires this to
        ``runtime.notify(crash_event(vm_name, status))`` (:func:`crash_event`).
        """
        self.crash_listeners.append(listener)

    def suspend_supported(self) -> bool:
        """Whether :meth:`suspend` works on this host (the driver declares
        :attr:`Capability.SUSPEND <bhype_core.drivers.capabilities.Capability.SUSPEND>`; bhyve
        detects it first: only ``BHYVE_SNAPSHOT`` builds can). May run a host command once."""
        return Capability.SUSPEND in self.capabilities

    def suspend(self, spec: VMSpec, vm_dir: Path, timeout: float) -> VMStatus:
        """Save the running guest's memory and device state to files in ``vm_dir`` (0600) and
        end the hypervisor; the VM is then ``stopped`` with ``suspended`` set, and the next
        :meth:`start` given ``Attachments(restore_from=...)`` resumes it.

        :raises NotSupported: the driver or this host's hypervisor cannot.
        :raises Conflict: the VM is not running.
        :raises SuspendFailed: saving failed; the guest runs on (nothing is left behind).
        """
        raise NotSupported("suspend", f"driver {self.name or type(self).__name__}")

    def saved_state(self, vm_dir: Path) -> Any:
        """The :class:`~bhype_core.drivers.saved_state.SavedState` of a suspended VM, or ``None``."""
        from bhype_core.drivers import saved_state

        return saved_state.read(Path(vm_dir))

    def discard_saved_state(self, vm_dir: Path) -> None:
        """Remove a suspended VM's saved state (its next start boots afresh)."""
        from bhype_core.drivers import saved_state

        saved_state.discard(Path(vm_dir))

    @abstractmethod
    def preflight(self, spec: VMSpec, vm_dir: Path, attachments: Attachments | None = None) -> list[Problem]:
        """Check everything that can be checked before a start (disks and ISO present,
        firmware installed, ports free, memory available, hypervisor usable, not already
        running). Read-only; no problem of severity ``error`` means start may proceed."""

    @abstractmethod
    def plan(self, spec: VMSpec, vm_dir: Path, attachments: Attachments | None = None) -> list[HostCommand]:
        """Every host command :meth:`start` would run, in order, without running anything."""

    @abstractmethod
    def start(self, spec: VMSpec, vm_dir: Path, attachments: Attachments | None = None) -> VMStatus:
        """Start the VM under a supervisor that outlives the calling process, and return once
        the hypervisor process runs. On failure raise :class:`HypervisorFailed` carrying the
        exit status and the last lines of its stderr, leaving nothing behind. Starting a VM
        that is already running raises :class:`~bhype_core.errors.Conflict`."""

    @abstractmethod
    def stop(self, spec: VMSpec, vm_dir: Path, timeout: float) -> VMStatus:
        """Ask the guest to shut down (ACPI) and wait up to ``timeout`` seconds; if it is
        still running then, power it off forcibly. Returns the final status."""

    @abstractmethod
    def force_stop(self, spec: VMSpec, vm_dir: Path) -> VMStatus:
        """Power the VM off at once and clean up hypervisor state (``bhyvectl --destroy``)."""

    @abstractmethod
    def status(self, spec: VMSpec, vm_dir: Path) -> VMStatus:
        """The VM's current state, read from reality (processes, pid/state files, /dev/vmm)."""

    @abstractmethod
    def running_instances(self) -> list[str]:
        """Instance names of every bHype VM the hypervisor is running now (reconciliation)."""

    # -- consistent point (issue 16) ---------------------------------------------------------

    def freeze_disks(self, spec: VMSpec, vm_dir: Path, disk_paths: Sequence[str]) -> FrozenDisks:
        """Hold the running VM's disks (``disk_paths``: each ``spec.disks`` entry's file, in
        order) at one instant while the guest keeps running: the returned files do not change
        until :meth:`thaw_disks`, and together they are a point-in-time (crash-consistent at
        one instant, like a storage snapshot) copy of every disk. Always pair with
        :meth:`thaw_disks` (or use :meth:`consistent_point`).

        :raises NotSupported: the driver does not declare ``CONSISTENT_POINT`` (bhyve has no
            equivalent).
        """
        raise NotSupported("a consistent point of a running VM", f"driver {self.name or type(self).__name__}")

    def thaw_disks(self, spec: VMSpec, vm_dir: Path, frozen: FrozenDisks) -> None:
        """Let the disks :meth:`freeze_disks` held change again, merging what the guest wrote
        meanwhile; works when the VM stopped in between.

        :raises NotSupported: the driver does not declare ``CONSISTENT_POINT``.
        """
        raise NotSupported("a consistent point of a running VM", f"driver {self.name or type(self).__name__}")

    # -- dirty tracking (issue 17) -----------------------------------------------------------

    def track_dirty(self, spec: VMSpec, vm_dir: Path, disk_paths: Sequence[str]) -> DirtyTracker:
        """A :class:`~bhype_core.drivers.dirty.DirtyTracker` for the running VM's disks
        (``disk_paths``: each ``spec.disks`` entry's file, in order), not started yet: what a
        warm move uses to copy only the ranges the guest wrote since its previous pass.

        :raises NotSupported: the driver does not declare ``DIRTY_TRACKING`` (bhyve).
        :raises Conflict: the VM is not running.
        """
        raise NotSupported("dirty-block tracking", f"driver {self.name or type(self).__name__}")

    @contextmanager
    def consistent_point(self, spec: VMSpec, vm_dir: Path, disk_paths: Sequence[str]) -> Iterator[FrozenDisks]:
        """:meth:`freeze_disks` for the ``with`` block, :meth:`thaw_disks` when it ends (also on
        an error or a cancel)."""
        frozen = self.freeze_disks(spec, vm_dir, disk_paths)
        try:
            yield frozen
        finally:
            self.thaw_disks(spec, vm_dir, frozen)
