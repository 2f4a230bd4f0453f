"""Pure argv builders for bhyve(8), bhyveload(8), grub-bhyve and bhyvectl(8) from a VMSpec.

Nothing here runs a command or touches the file system: the bhyve driver allocates the host
resources (taps, nmdm console, VNC port, disk paths, NVRAM copy), passes them in a
``BhyveResources`` and runs what comes back through the host runner.

PCI slot layout (bhyve(8) "-s slot,emulation"; conventions from reference 1.3 and 10):

- 0: hostbridge (bhyve(8): "usually configured at slot 0"; Windows wants it there)
- 2: cloud-init NoCloud seed CD (ahci-cd), when the resources carry one
- 3: install CD (ahci-cd), vm-bhyve ``install_slot=3``: before the disks, so a fresh NVRAM
  tries the installer first
- 4-19: disks, one controller per disk (vm-bhyve ``start_slot=4``)
- 20-27: NICs. A fixed base, not "right after the last disk": adding a disk must not move a
  NIC, or Linux renames enp0sN and Windows sees a new adapter
- 28: virtio-rnd
- 29: fbuf (VNC); 30: xhci tablet (TrueNAS 11 layout, bhyve(8) UEFI example)
- 31: lpc (bhyve(8): "can only be configured on bus 0"; Windows wants slot 31)
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from bhype_core.errors import ValidationErrors
from bhype_core.spec import VMSpec
from bhype_core.units import MIB, format_size

BHYVE = "/usr/sbin/bhyve"
BHYVELOAD = "/usr/sbin/bhyveload"
BHYVECTL = "/usr/sbin/bhyvectl"
GRUB_BHYVE = "/usr/local/sbin/grub-bhyve"  # sysutils/grub2-bhyve installs under PREFIX

# edk2-bhyve compatibility paths (reference 1.6). Never hand the VARS template to bhyve: copy it
# per VM (bhyve(8) EXAMPLES: "Be sure to create a per-guest copy of the template VARS file").
FIRMWARE_DIR = "/usr/local/share/uefi-firmware"
UEFI_CODE = f"{FIRMWARE_DIR}/BHYVE_UEFI_CODE.fd"
UEFI_VARS_TEMPLATE = f"{FIRMWARE_DIR}/BHYVE_UEFI_VARS.fd"
UEFI_CSM = f"{FIRMWARE_DIR}/BHYVE_UEFI_CSM.fd"

SLOT_HOSTBRIDGE = 0
SLOT_SEED = 2
SLOT_CDROM = 3
SLOT_FIRST_DISK = 4
SLOT_FIRST_NIC = 20
SLOT_RNG = 28
SLOT_FBUF = 29
SLOT_XHCI = 30
SLOT_LPC = 31
_ALWAYS_RESERVED = {SLOT_HOSTBRIDGE, SLOT_SEED, SLOT_CDROM, SLOT_FBUF, SLOT_XHCI, SLOT_LPC}

# bhyve(8) (revision of Oct 28, 2025), "Block storage device backends": "bootindex=index: Add
# the device to the bootorder at index. A fwcfg file is used to specify the bootorder. The guest
# firmware may ignore or doesn't support this fwcfg file." The option came with FreeBSD commit
# 480bef9 (D39285, 2023, merged to stable/13 as b02e0f9); its first release is not confirmed
# here, and bhyve of older releases refuses an unknown block option. The bootorder file travels
# over QEMU's fw_cfg interface (bhyve(8) "Fwcfg types": the "qemu" type passes "a boot order";
# the default "bhyve" fwctl reports only the CPU count), and edk2's BhyvePkg reads it only since
# June 2024 (tianocore/edk2 #5790). So bHype adds bootindex= (and -o lpc.fwcfg=qemu) only when
# [bhyve] bootindex = true says the host has all of it, and only for a boot that starts from the
# CD; otherwise a rescue boot relies on a fresh NVRAM (boot_plan).
BOOTINDEX_NOTE = "bhyve(8) bootindex= (D39285) with fw_cfg type qemu; edk2 BhyvePkg bootorder since 2024"

# bhyve(8) SYNOPSIS: options that take a value (the next argv element, or glued on).
_OPTIONS_WITH_VALUE = set("cfGkKlmnoprsU")


@dataclass(frozen=True)
class BhyveResources:
    """Host resources the driver allocated for one start of one VM.

    :param disk_paths: backing file or device per ``spec.disks`` entry, same order
        (``/dev/zvol/tank/vm/web1/disk0``, ``/vm/web1/disk0.img``).
    :param taps: tap interface per ``spec.nics`` entry (``tap12``).
    :param nmdm_id: nmdm(4) pair id; bhyve gets ``/dev/nmdm<id>A`` (``"12"`` or ``"-web1.1"``).
    :param vnc_port: loopback TCP port for fbuf; required when ``spec.graphics.vnc``.
    :param cdrom_path: resolved path of ``spec.cdrom``.
    :param cloud_init_iso: NoCloud seed ISO, attached at slot 2 when given.
    :param firmware_code: boot ROM; defaults to BHYVE_UEFI_CODE.fd / BHYVE_UEFI_CSM.fd by mode.
    :param firmware_vars: the VM's own NVRAM copy; required for boot mode ``uefi``.
    :param device_map: grub-bhyve ``-m`` file (written by the driver from :func:`grub_device_map`).
    :param grub_dir: grub-bhyve ``-d`` directory holding :func:`grub_cfg` for a host kernel.
    :param hostbridge: ``hostbridge`` or ``amd_hostbridge`` (bhyve(8) PCI EMULATION).
    :param secrets_file: a 0600 bhyve_config(5) file given with ``-k`` that holds the fbuf
        password (:func:`fbuf_secrets`), so the password is not on the command line, which
        every local account can read with ps(1); ``None`` puts it in the fbuf option.
    :param boot_cd: this boot starts from the ISO (install, rescue; a VM without disks):
        bhyveload ``-d <iso>``, grub-bhyve ``-r cd0``, and with ``bootindex`` the CD first.
    :param bootindex: the host's bhyve takes the ``bootindex=`` block-device option and its
        firmware honours the fw_cfg ``bootorder`` file (see :data:`BOOTINDEX_NOTE`).
    """

    disk_paths: Sequence[str] = ()
    taps: Sequence[str] = ()
    nmdm_id: str | None = None
    vnc_port: int | None = None
    cdrom_path: str | None = None
    cloud_init_iso: str | None = None
    firmware_code: str | None = None
    firmware_vars: str | None = None
    device_map: str | None = None
    grub_dir: str | None = None
    hostbridge: Literal["hostbridge", "amd_hostbridge"] = "hostbridge"
    secrets_file: str | None = None
    boot_cd: bool = False
    bootindex: bool = False

    def console(self, side: Literal["A", "B"] = "A") -> str:
        """nmdm(4) device path: bhyve and the loaders get side A, people attach to side B."""
        if not self.nmdm_id:
            raise ValueError("resources.nmdm_id is required for the serial console")
        return f"/dev/nmdm{self.nmdm_id}{side}"


def disk_slot(index: int) -> int:
    """PCI slot of ``spec.disks[index]``."""
    return SLOT_FIRST_DISK + index


def nic_slot(index: int) -> int:
    """PCI slot of ``spec.nics[index]``."""
    return SLOT_FIRST_NIC + index


def _used_slots(spec: VMSpec) -> dict[int, str]:
    used = {
        SLOT_HOSTBRIDGE: "the hostbridge",
        SLOT_SEED: "the cloud-init CD",
        SLOT_CDROM: "the CD",
        SLOT_FBUF: "the framebuffer",
        SLOT_XHCI: "the USB tablet",
        SLOT_LPC: "the LPC bridge",
    }
    used.update({disk_slot(i): f"disks.{i}" for i in range(len(spec.disks))})
    used.update({nic_slot(i): f"nics.{i}" for i in range(len(spec.nics))})
    if spec.rng:
        used[SLOT_RNG] = "virtio-rnd"
    return used


def _parse_slot(text: str) -> tuple[int, int, int] | None:
    """bhyve(8) -s slot forms ``slot``, ``slot:function``, ``bus:slot:function``."""
    parts = text.split(",", 1)[0].split(":")
    if not all(p.isdigit() for p in parts) or not 1 <= len(parts) <= 3:
        return None
    numbers = [int(p) for p in parts]
    if len(numbers) == 1:
        return 0, numbers[0], 0
    if len(numbers) == 2:
        return 0, numbers[0], numbers[1]
    return numbers[0], numbers[1], numbers[2]


def _extra_errors(spec: VMSpec) -> Iterable[tuple[str, str]]:
    args = spec.extra.bhyve
    used = _used_slots(spec)
    index = 0
    while index < len(args):
        arg, path = args[index], f"extra.bhyve.{index}"
        if not arg.startswith("-") or arg == "-":
            yield path, "unexpected argument: bHype adds the VM name itself; options start with '-'"
        elif arg[1] in _OPTIONS_WITH_VALUE:
            value = arg[2:]
            if not value:
                index += 1
                if index >= len(args):
                    yield path, f"option {arg} needs a value"
                    break
                value = args[index]
            if arg[1] == "s":
                slot = _parse_slot(value)
                if slot is None:
                    yield (
                        path,
                        f"invalid -s slot in {value!r} (bhyve(8): slot, slot:function or bus:slot:function)",
                    )
                elif slot[0] == 0 and slot[2] == 0 and slot[1] in used:
                    yield path, f"PCI slot {slot[1]} is already used by {used[slot[1]]}"
        index += 1


def bhyve_spec_errors(spec: VMSpec) -> list[tuple[str, str]]:
    """Rules bhyve adds to the platform-independent spec; usable as a ``SpecContext`` check."""
    problems: list[tuple[str, str]] = []
    if spec.graphics.vnc and spec.boot.mode not in ("uefi", "uefi-csm"):
        # bhyve(8)/reference 9.2: fbuf works only with a UEFI boot ROM (vm-bhyve refuses too).
        problems.append(("graphics.vnc", "bhyve's VNC framebuffer needs boot mode uefi or uefi-csm"))
    if spec.boot.mode == "bhyveload" and not spec.disks and spec.cdrom is None:
        problems.append(("disks", "bhyveload needs a disk or an ISO to load the kernel from"))
    if spec.boot.mode == "grub" and spec.boot.kernel is None and not spec.disks and spec.cdrom is None:
        problems.append(("disks", "grub-bhyve needs a disk or an ISO to boot from"))
    problems.extend(_extra_errors(spec))
    return problems


def _plain(value: str, what: str) -> str:
    # bhyve splits device options on commas (bhyve_config(5) legacy parsing): a comma in a path
    # would silently become a bogus option.
    if not value or "," in value or any(ord(c) < 32 for c in value):
        raise ValueError(f"{what} {value!r} must be non-empty without commas or control characters")
    return value


def _check_resources(spec: VMSpec, res: BhyveResources) -> None:
    if len(res.disk_paths) != len(spec.disks):
        raise ValueError(f"{len(res.disk_paths)} disk paths for {len(spec.disks)} disks")
    if len(res.taps) != len(spec.nics):
        raise ValueError(f"{len(res.taps)} taps for {len(spec.nics)} NICs")
    if spec.cdrom is not None and not res.cdrom_path:
        raise ValueError("resources.cdrom_path is required when spec.cdrom is set")
    if spec.graphics.vnc and not (res.vnc_port and 1 <= res.vnc_port <= 65535):
        raise ValueError("resources.vnc_port is required when graphics.vnc is on")
    if spec.boot.mode == "uefi" and not res.firmware_vars:
        raise ValueError("resources.firmware_vars (a per-VM copy of BHYVE_UEFI_VARS.fd) is required for uefi")


def _bootorder(resources: BhyveResources) -> bool:
    """Whether this boot puts the CD first through ``bootindex=`` (see :data:`BOOTINDEX_NOTE`)."""
    return resources.bootindex and resources.boot_cd


def _disk_device(spec: VMSpec, index: int, path: str, resources: BhyveResources) -> str:
    disk = spec.disks[index]
    device = f"{disk_slot(index)},{disk.bus},{_plain(path, 'disk path')}"
    if disk.sectorsize:
        # bhyve(8): block devices take sectorsize=logical[/physical]; the NVMe backend has sectsz=.
        device += f",sectsz={disk.sectorsize}" if disk.bus == "nvme" else f",sectorsize={disk.sectorsize}"
    if index == 0 and _bootorder(resources) and disk.bus != "nvme":
        device += ",bootindex=2"  # after the CD; bhyve(8) lists bootindex for block backends
    return device


def fbuf_secrets(spec: VMSpec) -> str:
    """The bhyve_config(5) lines for :attr:`BhyveResources.secrets_file`: the fbuf device's
    ``password`` variable (node ``pci.<bus>.<slot>.<function>``, decimal; the legacy ``-s``
    option sets the same variable, bhyve_config(5) "Frame Buffer Settings"). Empty when the
    VM has no VNC password."""
    graphics = spec.graphics
    if not (graphics.vnc and graphics.password):
        return ""
    return f"pci.0.{SLOT_FBUF}.0.password={graphics.password}\n"


def _fbuf_device(spec: VMSpec, port: int, secrets_file: str | None = None) -> str:
    graphics = spec.graphics
    # bhyve(8) "Framebuffer device backends": tcp=ip:port, w=, h=, vga=, wait, password=.
    # Always loopback (reference 9.3): bHype's web service relays authorised viewers.
    device = f"{SLOT_FBUF},fbuf,tcp=127.0.0.1:{port},w={graphics.width},h={graphics.height}"
    if graphics.vga != "io":  # io is bhyve's default
        device += f",vga={graphics.vga}"
    if graphics.wait:
        device += ",wait"
    if graphics.password and not secrets_file:
        device += f",password={graphics.password}"
    return device


def bhyve_argv(spec: VMSpec, resources: BhyveResources) -> list[str]:
    """The full bhyve(8) command line that runs ``spec`` with ``resources``.

    :raises ValidationErrors: when the spec breaks a bhyve rule (see :func:`bhyve_spec_errors`).
    :raises ValueError: when ``resources`` do not match the spec (a driver bug).
    """
    ValidationErrors(bhyve_spec_errors(spec)).raise_if_any()
    _check_resources(spec, resources)
    cpus = spec.cpus
    # -A ACPI tables (no-op on 15, needed on 13), -H yield on HLT (else 100% host CPU),
    # -P exit on PAUSE, -w ignore unimplemented MSRs (Windows/AMD): reference 1.2, vm-bhyve.
    argv = [BHYVE, "-A", "-H", "-P", "-w"]
    if spec.clock == "utc":
        argv.append("-u")  # bhyve(8) -u "RTC keeps UTC time"; Windows expects local time
    argv += ["-c", f"cpus={cpus.count},sockets={cpus.sockets},cores={cpus.cores},threads={cpus.threads}"]
    argv += ["-m", format_size(spec.memory)]  # bhyve(8) -m accepts K/M/G/T suffixes
    argv += ["-U", str(spec.uuid)]  # stable SMBIOS UUID instead of one derived from host name
    if _bootorder(resources) and spec.cdrom is not None:
        argv += ["-o", "lpc.fwcfg=qemu"]  # the bootorder file needs QEMU's fw_cfg (BOOTINDEX_NOTE)
    if resources.secrets_file and fbuf_secrets(spec):
        # bhyve(8) -k: config variables from a file (13.1+), here only the VNC password.
        argv += ["-k", _plain(resources.secrets_file, "secrets file")]
    argv += ["-s", f"{SLOT_HOSTBRIDGE},{resources.hostbridge}"]
    if resources.cloud_init_iso:
        argv += ["-s", f"{SLOT_SEED},ahci-cd,{_plain(resources.cloud_init_iso, 'seed ISO')},ro"]
    if spec.cdrom is not None:
        cd = f"{SLOT_CDROM},ahci-cd,{_plain(resources.cdrom_path or '', 'ISO path')},ro"
        argv += ["-s", cd + (",bootindex=1" if _bootorder(resources) else "")]
    for index, path in enumerate(resources.disk_paths):
        argv += ["-s", _disk_device(spec, index, path, resources)]
    for index, nic in enumerate(spec.nics):
        # Always an explicit stored mac=: without it bhyve hashes slot/function/name (bhyve(8)
        # "Network device backends"), so a NIC moved to another slot would get a new MAC.
        tap = _plain(resources.taps[index], "tap name")
        argv += ["-s", f"{nic_slot(index)},{nic.model},{tap},mac={nic.mac}"]
    if spec.rng:
        argv += ["-s", f"{SLOT_RNG},virtio-rnd"]
    if spec.graphics.vnc:
        argv += ["-s", _fbuf_device(spec, resources.vnc_port or 0, resources.secrets_file)]
        if spec.graphics.tablet:
            argv += ["-s", f"{SLOT_XHCI},xhci,tablet"]  # absolute pointer for VNC
    argv += ["-s", f"{SLOT_LPC},lpc"]
    if spec.serial:
        argv += ["-l", f"com1,{resources.console('A')}"]  # reference 9.1: bhyve gets side A
    if spec.boot.mode in ("uefi", "uefi-csm"):
        code = resources.firmware_code or (UEFI_CODE if spec.boot.mode == "uefi" else UEFI_CSM)
        bootrom = f"bootrom,{_plain(code, 'firmware')}"
        if resources.firmware_vars:
            bootrom += f",{_plain(resources.firmware_vars, 'NVRAM file')}"
        argv += ["-l", bootrom]  # bhyve(8) "Boot ROM device backends": romfile[,varfile]
    argv += spec.extra.bhyve
    argv.append(spec.instance_name)  # bhyve(8): vmname is the last argument
    return argv


def bhyveload_argv(spec: VMSpec, resources: BhyveResources) -> list[str]:
    """bhyveload(8) loading the FreeBSD kernel for ``spec`` (rerun before every boot).

    Loads from the ISO when this boot starts from it (``resources.boot_cd``: an install or
    rescue start) or the VM has no disk, else from the first disk, so an ISO left attached is
    not booted on every reboot (issue 14); the console and ``-m`` match what
    :func:`bhyve_argv` passes, as bhyve(8) -m requires.
    """
    if spec.boot.mode != "bhyveload":
        raise ValueError(f"boot mode is {spec.boot.mode}, not bhyveload")
    ValidationErrors(bhyve_spec_errors(spec)).raise_if_any()
    _check_resources(spec, resources)
    from_cd = spec.cdrom is not None and (resources.boot_cd or not spec.disks)
    source = resources.cdrom_path if from_cd else resources.disk_paths[0]
    # bhyveload(8) SYNOPSIS order: [-c cons-dev] [-d disk-path] [-e name=value] [-m mem-size] vmname
    argv = [BHYVELOAD, "-c", resources.console("A"), "-d", source or ""]
    # The kernel reads smbios.system.uuid from the loader environment (vm-bhyve passes it too).
    argv += ["-e", f"smbios.system.uuid={spec.uuid}"]
    for key, value in spec.boot.loader_env.items():
        argv += ["-e", f"{key}={value}"]
    argv += ["-m", format_size(spec.memory), spec.instance_name]
    return argv


def grub_root(spec: VMSpec, boot_cd: bool = False) -> str:
    """grub-bhyve ``-r``: explicit, ``host`` for a host kernel, ``cd0`` when this boot starts
    from the ISO (``boot_cd``: install, rescue) or there is no disk, else ``hd0,1``.

    ``hd0,1`` names the first partition whatever the partition table (GRUB's partition names
    without a scheme); grub-bhyve's own example ``hd0,msdos1`` does not exist on the GPT disks
    most cloud images have (reference 2.2: vm-bhyve boots root ``hd0,1`` too).
    """
    if spec.boot.kernel is not None:
        return "host"
    if spec.boot.grub_root:
        return spec.boot.grub_root
    return "cd0" if spec.cdrom is not None and (boot_cd or not spec.disks) else "hd0,1"


def grub_device_map(spec: VMSpec, resources: BhyveResources) -> str:
    """device.map for grub-bhyve ``-m``: ``(hdN) path`` per disk, ``(cd0) iso`` (reference 2.2)."""
    _check_resources(spec, resources)
    lines = [f"(hd{index}) {path}" for index, path in enumerate(resources.disk_paths)]
    if spec.cdrom is not None:
        lines.append(f"(cd0) {resources.cdrom_path}")
    return "\n".join(lines) + "\n"


def grub_cfg(spec: VMSpec) -> str:
    """grub.cfg that boots a host kernel through grub-bhyve ``-r host -d <dir>``.

    grub-bhyve adds ``console=ttyS0`` to a Linux command line itself (unless ``-n``).
    """
    boot = spec.boot
    if boot.kernel is None:
        raise ValueError("grub_cfg is only for a host kernel (boot.kernel)")
    lines = ["set timeout=0", 'menuentry "bhype" {', f"    linux (host){boot.kernel} {boot.cmdline}".rstrip()]
    if boot.initrd:
        lines.append(f"    initrd (host){boot.initrd}")
    lines.append("}")
    return "\n".join(lines) + "\n"


def grub_bhyve_argv(spec: VMSpec, resources: BhyveResources) -> list[str]:
    """grub-bhyve loading the guest kernel (reference 2.2: -m map, -r root, -d dir, -M, -c)."""
    if spec.boot.mode != "grub":
        raise ValueError(f"boot mode is {spec.boot.mode}, not grub")
    ValidationErrors(bhyve_spec_errors(spec)).raise_if_any()
    _check_resources(spec, resources)
    if not resources.device_map:
        raise ValueError("resources.device_map is required for grub-bhyve")
    argv = [GRUB_BHYVE, "-m", resources.device_map, "-r", grub_root(spec, resources.boot_cd)]
    if spec.boot.kernel is not None:
        if not resources.grub_dir:
            raise ValueError("resources.grub_dir (holding grub.cfg) is required for a host kernel")
        argv += ["-d", resources.grub_dir]
    # -M in megabytes as TrueNAS and the reference example pass it ("-M 1024M").
    argv += ["-M", f"{spec.memory // MIB}M", "-c", resources.console("A"), spec.instance_name]
    return argv


def bhyvectl_argv(vm_name: str, action: Literal["destroy", "force-poweroff", "force-reset"]) -> list[str]:
    """bhyvectl(8) ``--vm=NAME --<action>`` (reference 3.1; long options, ``=`` form)."""
    if not vm_name or vm_name.startswith("-") or "/" in vm_name:
        raise ValueError(f"invalid VM instance name {vm_name!r}")
    return [BHYVECTL, f"--vm={vm_name}", f"--{action}"]


def bhyvectl_destroy_argv(vm_name: str) -> list[str]:
    """Free the VM instance (/dev/vmm/NAME and guest memory) after bhyve exited."""
    return bhyvectl_argv(vm_name, "destroy")
