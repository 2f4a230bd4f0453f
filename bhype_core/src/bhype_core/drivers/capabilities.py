"""What a hypervisor driver declares about itself instead of callers testing platform names
(issue 12): its capabilities, its UEFI firmware rules and the per-VM statistics it can read.

A driver registered by a third party supplies all three the same way the built-in bhyve and
QEMU drivers do (:class:`~bhype_core.drivers.base.HypervisorDriver` attributes and methods); the
VM layer only ever asks the active driver.
"""

from __future__ import annotations

from collections.abc import Callable, Collection
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from bhype_core.errors import NotSupported


class Capability(StrEnum):
    """Something a driver can do beyond the required start/stop/status."""

    UEFI = "uefi"  # boot mode uefi (a firmware ROM plus a per-VM variable store)
    UEFI_CSM = "uefi-csm"  # boot mode uefi-csm (bhyve's CSM ROM)
    VNC_TCP = "vnc-tcp"  # a VNC framebuffer on a loopback TCP port
    VNC_UNIX_SOCKET = "vnc-unix-socket"  # a VNC framebuffer on a Unix socket in the VM directory
    SERIAL_CONSOLE = "serial-console"  # an attachable serial console
    LIVE_STATS = "live-stats"  # :meth:`HypervisorDriver.stats` on a running VM
    DISK_STATS = "disk-stats"  # per-disk I/O counters in those stats
    SUSPEND = "suspend"  # suspend to disk and resume (HypervisorDriver.suspend, drivers/saved_state.py)
    # freeze_disks/thaw_disks: a point-in-time copy of a running VM's disks (QEMU: QMP overlays)
    CONSISTENT_POINT = "consistent-point"
    # track_dirty: which disk ranges a running guest wrote between passes (drivers/dirty.py)
    DIRTY_TRACKING = "dirty-tracking"


SpecCheck = Callable[[Any], list[tuple[str, str]]]
"""A spec rule: ``check(spec) -> [(field path, message), …]``; a ``SpecContext`` check."""


@dataclass(frozen=True)
class FirmwareRules:
    """Where a driver's UEFI variable store template is and what each VM's copy is called.

    :param nvram_template: the vars template on the host (copied, never shared: bhyve(8)).
    :param nvram_file: the per-VM copy's file name in the VM directory, as the driver opens it.
    :param install_hint: how to install the template (``pkg install edk2-bhyve``).
    """

    nvram_template: Path
    nvram_file: str
    install_hint: str


@dataclass(frozen=True)
class FrozenDisks:
    """A running VM's disks held at one instant (:meth:`HypervisorDriver.freeze_disks`).

    :param disks: per drive (``disk0``… in spec order) the file holding the frozen point: read
        it while frozen, it does not change.
    :param overlays: per drive where the guest's writes go meanwhile (driver-private; what
        :meth:`HypervisorDriver.thaw_disks` merges back).
    """

    disks: dict[str, Path]
    overlays: dict[str, Path] = field(default_factory=dict)


@dataclass(frozen=True)
class DiskStats:
    """I/O counters of one VM disk since the hypervisor started (``None``: not reported)."""

    read_bytes: int | None = None
    write_bytes: int | None = None
    read_ops: int | None = None
    write_ops: int | None = None


@dataclass(frozen=True)
class VMStats:
    """One sample of a running VM's resource use, as the driver can read it.

    :param cpu_seconds: CPU time of the hypervisor process (user + system; guest time is
        accounted to it on both platforms).
    :param rss_bytes: resident memory of the hypervisor process (or, on bhyve, guest RAM the
        kernel backs: ``Resident memory`` of ``bhyvectl --get-stats``).
    :param disks: per disk (``disk0``…, the spec's volume names, or the device ids the
        hypervisor reports) its counters.
    :param extra: driver-specific counters by name (``vm_exits``, ``hlt_exits``…).
    """

    pid: int | None = None
    cpu_seconds: float | None = None
    rss_bytes: int | None = None
    disks: dict[str, DiskStats] = field(default_factory=dict)
    extra: dict[str, int | float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict (the API's and the monitoring plugin's shape)."""
        return asdict(self)


def require(capabilities: Collection[str], capability: Capability, owner: str, path: str = "") -> None:
    """Raise :class:`~bhype_core.errors.NotSupported` (422 naming ``path``) unless
    ``capability`` is in ``capabilities``; ``owner`` names who lacks it (``driver qemu``)."""
    if capability not in capabilities:
        raise NotSupported(str(capability), owner, path)


def capability_errors(spec: Any, capabilities: Collection[str], owner: str) -> list[tuple[str, str]]:
    """The spec fields that ask for something ``capabilities`` lacks (plan-time, before any
    host command): boot mode uefi/uefi-csm, a VNC framebuffer, a serial console."""
    problems: list[tuple[str, str]] = []
    wanted = {"uefi": Capability.UEFI, "uefi-csm": Capability.UEFI_CSM}.get(spec.boot.mode)
    if wanted is not None and wanted not in capabilities:
        problems.append(("boot.mode", f"boot mode {spec.boot.mode} is not supported by {owner}"))
    if spec.graphics.vnc and not {Capability.VNC_TCP, Capability.VNC_UNIX_SOCKET} & set(capabilities):
        problems.append(("graphics.vnc", f"a VNC framebuffer is not supported by {owner}"))
    if spec.serial and Capability.SERIAL_CONSOLE not in capabilities:
        problems.append(("serial", f"a serial console is not supported by {owner}"))
    return problems
