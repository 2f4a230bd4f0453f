"""The hypervisor driver interface: what bhyve (FreeBSD) and QEMU (Linux) both provide."""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from bhype_core.spec import VMSpec


class VMState(str, Enum):
    """Where a VM is in its life, as the host sees it."""

    STOPPED = "stopped"
    STARTING = "starting"
    RUNNING = "running"
    STOPPING = "stopping"
    CRASHED = "crashed"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Problem:
    """A preflight finding: what is wrong (``field`` names the spec part) and how to fix it."""

    field: str
    message: str
    fix: str = ""


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
    """

    state: VMState
    pid: int | None = None
    exit_status: int | None = None
    detail: str = ""
    consoles: dict[str, dict[str, Any]] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "state": self.state.value,
            "pid": self.pid,
            "exit_status": self.exit_status,
            "detail": self.detail,
            "consoles": self.consoles,
        }


class HypervisorDriver(ABC):
    """A hypervisor on one platform. Built by a :class:`~bhype_core.registry.DriverEntry`
    factory from the runtime; every host command goes through ``runtime.runner``.

    ``vm_dir`` is the VM's private directory (pid/state files, NVRAM copy, logs, sockets),
    owned by the caller and existing before :meth:`start`.
    """

    name: str = ""

    @abstractmethod
    def preflight(self, spec: VMSpec, vm_dir: Path) -> list[Problem]:
        """Check everything that can be checked before a start (disks and ISO present,
        firmware installed, ports free, memory available, hypervisor usable, not already
        running). Read-only; an empty list means start may proceed."""

    @abstractmethod
    def plan(self, spec: VMSpec, vm_dir: Path) -> list[HostCommand]:
        """Every host command :meth:`start` would run, in order, without running anything."""

    @abstractmethod
    def start(self, spec: VMSpec, vm_dir: Path) -> VMStatus:
        """Start the VM under a supervisor that outlives the calling process, and return once
        the hypervisor process runs. On failure raise :class:`~bhype_core.errors.BhypeError`
        carrying the exit status and the last lines of its stderr, leaving nothing behind."""

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
