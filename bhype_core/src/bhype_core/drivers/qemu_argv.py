"""Pure argv builder for qemu-system-x86_64 (the Linux dev/test host) from a VMSpec.

The guest sees the same PCI layout as under bhyve (``drivers/bhyve_argv.py``): every device
gets an explicit ``addr=`` at the bhyve slot number, so interface names, disk order and
boot entries do not change between the two platforms. Facts: QEMU 7.2 ``qemu-system-x86_64
-device <model>,help``, qemu(1), and reference linux-test-host.md.

Semantics chosen to match bhyve's supervisor loop (reference 1.7):

* ``-no-reboot``: a guest reboot makes QEMU exit instead of resetting in place, like bhyve
  exiting 0, so the driver restarts the process and the reboot is observable. QEMU exits 0
  for both reboot and power-off; the driver tells them apart from the QMP ``SHUTDOWN``
  event's ``reason`` (see :func:`exit_status_for_shutdown`).
* ``-vnc unix:PATH`` (what the driver uses): reachable only through the socket's directory,
  so no VNC password. ``-vnc 127.0.0.1:N,password=on`` (TCP, kept for tests and callers that
  want a port): the password is never on the command line (visible in ``ps``); it is set with
  QMP ``set_password`` right after start.
* ``graphics.wait`` (bhyve fbuf ``wait``) has no QEMU option: a driver may start paused
  (``start_paused``, ``-S``) and send QMP ``cont`` when a viewer connects.
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from bhype_core.drivers.bhyve_argv import (
    SLOT_CDROM,
    SLOT_FBUF,
    SLOT_RNG,
    SLOT_SEED,
    SLOT_XHCI,
    disk_slot,
    nic_slot,
)
from bhype_core.spec import VMSpec
from bhype_core.units import MIB

QEMU = "qemu-system-x86_64"

# Debian's ovmf package (bookworm ships the 4M images; older releases the 2M ones).
OVMF_CANDIDATES = (
    ("/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd"),
    ("/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd"),
)

# Only ever forward from loopback: the test hosts must not listen on other addresses.
_HOSTFWD_RE = re.compile(r"^(tcp|udp):127\.0\.0\.1:\d{1,5}-(\d{1,3}(\.\d{1,3}){3})?:\d{1,5}$")


def find_ovmf(candidates: Sequence[tuple[str, str]] = OVMF_CANDIDATES) -> tuple[str, str] | None:
    """(code, vars template) of the first installed OVMF pair, or ``None``."""
    for code, vars_template in candidates:
        if os.path.isfile(code) and os.path.isfile(vars_template):
            return code, vars_template
    return None


@dataclass(frozen=True)
class QemuResources:
    """Host resources for one QEMU start.

    :param qmp_socket: UNIX socket path for QMP (``-qmp unix:PATH,server=on,wait=off``).
    :param disk_paths: raw image or device per ``spec.disks`` entry, same order.
    :param taps: per NIC a tap interface name, or ``None`` for QEMU user networking; empty =
        user networking for every NIC.
    :param hostfwd: per NIC index, user-networking forwards like ``tcp:127.0.0.1:2222-:22``.
    :param accel: ``tcg`` or ``kvm`` (probe KVM with a timeout; nested KVM hangs here).
    :param vnc_socket / vnc_port: where VNC listens (UNIX socket, or 127.0.0.1 port >= 5900).
    :param serial_socket / serial_log: console socket and/or a file recording its output.
    :param firmware_code / firmware_vars: OVMF code and the VM's own vars copy (uefi only).
    :param start_paused: add ``-S`` (CPUs stopped until QMP ``cont``).
    :param boot_cd: this boot starts from the ISO (install, rescue): the CD gets ``bootindex=0``
        and the first disk 1; otherwise the disk comes first (qemu docs "bootindex").
    """

    qmp_socket: str
    disk_paths: Sequence[str] = ()
    taps: Sequence[str | None] = ()
    hostfwd: Mapping[int, Sequence[str]] = field(default_factory=dict)
    accel: Literal["tcg", "kvm"] = "tcg"
    machine: Literal["q35", "pc"] = "q35"
    cpu_model: str | None = None
    vnc_socket: str | None = None
    vnc_port: int | None = None
    serial_socket: str | None = None
    serial_log: str | None = None
    cdrom_path: str | None = None
    cloud_init_iso: str | None = None
    firmware_code: str | None = None
    firmware_vars: str | None = None
    start_paused: bool = False
    binary: str = QEMU
    boot_cd: bool = False


def exit_status_for_shutdown(reason: str) -> int:
    """Map a QMP ``SHUTDOWN`` ``reason`` to the bhyve(8) exit status with the same meaning.

    0 reboot (start again), 1 power-off, 3 crash (bhyve: triple fault), 4 error.
    """
    if reason in ("guest-reset", "host-qmp-system-reset", "subsystem-reset"):
        return 0
    if reason in ("guest-shutdown", "host-qmp-quit", "host-signal", "host-ui"):
        return 1
    if reason == "guest-panic":
        return 3
    return 4


def _opt(value: str) -> str:
    # QEMU option values escape a comma by doubling it (qemu(1) "-drive file=...").
    if any(ord(c) < 32 for c in value):
        raise ValueError(f"control characters in QEMU option value {value!r}")
    return value.replace(",", ",,")


def _addr(slot: int) -> str:
    return f"addr=0x{slot:x}"


def disk_serial(volume: str) -> str:
    """Stable serial (<= 20 characters, the limit of IDE/NVMe) shown in /dev/disk/by-id."""
    if len(volume) <= 20:
        return volume
    return f"{volume[:11]}-{hashlib.sha256(volume.encode()).hexdigest()[:8]}"


def _check_resources(spec: VMSpec, res: QemuResources) -> None:
    if len(res.disk_paths) != len(spec.disks):
        raise ValueError(f"{len(res.disk_paths)} disk paths for {len(spec.disks)} disks")
    if res.taps and len(res.taps) != len(spec.nics):
        raise ValueError(f"{len(res.taps)} taps for {len(spec.nics)} NICs")
    for index, forwards in res.hostfwd.items():
        if not 0 <= index < len(spec.nics) or (res.taps and res.taps[index]):
            raise ValueError(f"hostfwd for NIC {index}, which is not a user-networking NIC")
        for forward in forwards:
            if not _HOSTFWD_RE.match(forward):
                raise ValueError(f"hostfwd {forward!r} must look like tcp:127.0.0.1:HOSTPORT-:GUESTPORT")
    if spec.cdrom is not None and not res.cdrom_path:
        raise ValueError("resources.cdrom_path is required when spec.cdrom is set")
    if spec.graphics.vnc and not res.vnc_socket and not (res.vnc_port and 5900 <= res.vnc_port <= 65535):
        raise ValueError("resources.vnc_socket or a vnc_port >= 5900 is required when graphics.vnc is on")
    if spec.boot.mode == "uefi" and not (res.firmware_code and res.firmware_vars):
        raise ValueError("resources.firmware_code and firmware_vars (OVMF) are required for uefi")


def _cd(drive_id: str, slot: int, path: str, bootindex: int | None) -> list[str]:
    # One AHCI controller per CD at the bhyve slot, like bhyve's ahci-cd.
    device = f"ide-cd,bus=ahci{slot}.0,drive={drive_id}"
    if bootindex is not None:
        device += f",bootindex={bootindex}"
    return [
        "-drive", f"if=none,id={drive_id},media=cdrom,readonly=on,format=raw,file={_opt(path)}",
        "-device", f"ahci,id=ahci{slot},{_addr(slot)}",
        "-device", device,
    ]  # fmt: skip


def _seed(path: str) -> list[str]:
    # A CD-ROM to the guest (/dev/sr0, as bhyve's ahci-cd at the same slot), on a virtio-scsi
    # controller rather than AHCI: cloud images' kernels may lack AHCI (Debian's cloud kernel
    # has CONFIG_SATA_AHCI unset) but have virtio_scsi and sr_mod, and NoCloud finds the seed
    # by its cidata label on any block device.
    return [
        "-drive", f"if=none,id=seed,media=cdrom,readonly=on,format=raw,file={_opt(path)}",
        "-device", f"virtio-scsi-pci,id=seedscsi,{_addr(SLOT_SEED)}",
        "-device", "scsi-cd,bus=seedscsi.0,drive=seed",
    ]  # fmt: skip


def _disks(spec: VMSpec, res: QemuResources) -> list[str]:
    argv: list[str] = []
    for index, (disk, path) in enumerate(zip(spec.disks, res.disk_paths, strict=True)):
        slot, drive = disk_slot(index), f"disk{index}"
        # discard=unmap lets guest TRIM punch holes in sparse images.
        argv += ["-drive", f"if=none,id={drive},format=raw,discard=unmap,file={_opt(path)}"]
        # QEMU 7.2 rejects serial= on -drive if=virtio: it goes on the -device.
        props = f"drive={drive},serial={_opt(disk_serial(disk.volume or drive))}"
        if disk.sectorsize:
            props += f",logical_block_size={disk.sectorsize},physical_block_size={disk.sectorsize}"
        if index == 0 and spec.boot.kernel is None:
            # Disk before CD: a blank disk falls through to the installer, an installed one
            # boots even with the ISO still attached; an install or rescue boot puts the CD
            # first. (-kernel's option ROM takes bootindex 0.)
            props += ",bootindex=1" if res.boot_cd else ",bootindex=0"
        if disk.bus == "virtio-blk":
            argv += ["-device", f"virtio-blk-pci,{props},{_addr(slot)}"]
        elif disk.bus == "nvme":
            argv += ["-device", f"nvme,{props},{_addr(slot)}"]
        else:  # ahci-hd: one AHCI controller per disk, as bhyve's ahci-hd emulation has
            argv += [
                "-device",
                f"ahci,id=ahci{slot},{_addr(slot)}",
                "-device",
                f"ide-hd,bus=ahci{slot}.0,{props}",
            ]
    return argv


def _nics(spec: VMSpec, res: QemuResources) -> list[str]:
    argv: list[str] = []
    for index, nic in enumerate(spec.nics):
        tap = res.taps[index] if res.taps else None
        if tap:
            netdev = f"tap,id=net{index},ifname={_opt(tap)},script=no,downscript=no"
        else:
            netdev = f"user,id=net{index}" + "".join(f",hostfwd={f}" for f in res.hostfwd.get(index, ()))
        model = "virtio-net-pci" if nic.model == "virtio-net" else "e1000"
        argv += [
            "-netdev",
            netdev,
            "-device",
            f"{model},netdev=net{index},mac={nic.mac},{_addr(nic_slot(index))}",
        ]
    return argv


def _boot(spec: VMSpec, res: QemuResources) -> list[str]:
    boot = spec.boot
    if boot.mode == "uefi":
        return [
            "-drive", f"if=pflash,format=raw,unit=0,readonly=on,file={_opt(res.firmware_code or '')}",
            "-drive", f"if=pflash,format=raw,unit=1,file={_opt(res.firmware_vars or '')}",
        ]  # fmt: skip
    if boot.kernel is not None:
        # Direct kernel boot stands in for grub-bhyve -r host; grub-bhyve inserts
        # console=ttyS0 unless told otherwise, so do the same for identical guest output.
        cmdline = boot.cmdline if "console=" in boot.cmdline else f"console=ttyS0 {boot.cmdline}".strip()
        argv = ["-kernel", boot.kernel]
        if boot.initrd:
            argv += ["-initrd", boot.initrd]
        return argv + ["-append", cmdline]
    # uefi-csm, bhyveload, grub from disk: SeaBIOS (QEMU's default firmware) boots the
    # guest's own legacy boot code, the closest equivalent of CSM and of a host-side loader.
    return []


def _console(spec: VMSpec, res: QemuResources) -> list[str]:
    argv: list[str] = []
    if spec.graphics.vnc:
        graphics = spec.graphics
        argv += ["-device", f"VGA,{_addr(SLOT_FBUF)},xres={graphics.width},yres={graphics.height}"]
        where = (
            f"unix:{_opt(res.vnc_socket)}" if res.vnc_socket else f"127.0.0.1:{(res.vnc_port or 5900) - 5900}"
        )
        # A unix socket is guarded by its directory's permissions (no password: QEMU's VNC
        # authentication is DES on 8 characters); a TCP port by the password, set over QMP.
        password = graphics.password and not res.vnc_socket
        argv += ["-vnc", where + (",password=on" if password else "")]
        if graphics.tablet:
            argv += ["-device", f"qemu-xhci,id=xhci,{_addr(SLOT_XHCI)}", "-device", "usb-tablet,bus=xhci.0"]
    if spec.serial and (res.serial_socket or res.serial_log):
        if res.serial_socket:
            chardev = f"socket,id=serial0,path={_opt(res.serial_socket)},server=on,wait=off"
            if res.serial_log:
                chardev += f",logfile={_opt(res.serial_log)}"
        else:
            chardev = f"file,id=serial0,path={_opt(res.serial_log or '')}"
        argv += ["-chardev", chardev, "-serial", "chardev:serial0"]
    return argv


def qemu_argv(spec: VMSpec, resources: QemuResources) -> list[str]:
    """The qemu-system-x86_64 command line for ``spec`` with ``resources``.

    :raises ValueError: when ``resources`` do not match the spec (a driver bug).
    """
    _check_resources(spec, resources)
    cpus = spec.cpus
    argv = [resources.binary, "-name", spec.instance_name, "-uuid", str(spec.uuid)]
    # -nodefaults: no implicit NIC, VGA, serial, monitor or CD; every device below is explicit.
    argv += ["-nodefaults", "-no-user-config", "-machine", resources.machine, "-accel", resources.accel]
    if resources.cpu_model:
        argv += ["-cpu", resources.cpu_model]
    argv += ["-smp", f"cpus={cpus.count},sockets={cpus.sockets},cores={cpus.cores},threads={cpus.threads}"]
    argv += ["-m", f"{spec.memory // MIB}M", "-rtc", f"base={spec.clock}"]
    argv += ["-no-reboot", "-display", "none"]
    argv += ["-qmp", f"unix:{_opt(resources.qmp_socket)},server=on,wait=off"]
    argv += _boot(spec, resources)
    if resources.cloud_init_iso:
        argv += _seed(resources.cloud_init_iso)
    if spec.cdrom is not None:
        # -kernel's option ROM holds bootindex 0 (QEMU refuses a second one): a host kernel
        # boots whatever the CD's index, so the CD then stays at 1.
        first = resources.boot_cd and spec.boot.kernel is None
        argv += _cd("cd0", SLOT_CDROM, resources.cdrom_path or "", 0 if first else 1)
    argv += _disks(spec, resources)
    argv += _nics(spec, resources)
    if spec.rng:
        argv += ["-object", "rng-random,id=rng0,filename=/dev/urandom"]
        argv += ["-device", f"virtio-rng-pci,rng=rng0,{_addr(SLOT_RNG)}"]
    argv += _console(spec, resources)
    if resources.start_paused:
        argv.append("-S")
    argv += spec.extra.qemu
    return argv
