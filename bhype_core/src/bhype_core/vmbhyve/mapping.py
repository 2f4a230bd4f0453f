"""vm-bhyve guest config → bHype spec data, with every key either mapped or listed as
not mapped (and why).

Key meanings follow vm-bhyve's ``sample-templates/config.sample`` and how ``lib/vm-run``
turns them into bhyve(8) arguments (``vm::run``: ``-c cpu -m memory -AHPw``, ``-u`` unless
``utctime`` is off, ``-U uuid``; ``vm::bhyve_device_disks``: ``-s slot,<diskN_type>,<path>[,
<diskN_opts>]``; ``vm::bhyve_device_networking``: ``-s slot,<networkN_type>,tapN,mac=…``;
``vm::bhyve_device_fbuf``: ``fbuf,tcp=<listen>:<port>,w=,h=[,vga=][,wait][,password=]``;
``-l comN,/dev/nmdm…A``; ``-l bootrom,<firmware>[,<dir>/uefi-vars.fd]``).
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bhype_core.spec_parts import NAME_RE, RESOLUTIONS
from bhype_core.units import MIB, format_size, parse_size
from bhype_core.vmbhyve.datastore import GuestConf

FALSE = {"", "no", "off", "false", "0"}
NUMBERED = re.compile(r"^(disk|network|passthru|virt_console|grub_install|grub_run)(\d+)(_\w+)?$")
GUEST_OS = {"freebsd": "freebsd", "netbsd": "netbsd", "openbsd": "openbsd", "windows": "windows",
            "centos": "linux", "alpine": "linux", "ubuntu": "linux", "debian": "linux", "arch": "linux",
            "fedora": "linux", "linux": "linux"}
# Slots bHype's bhyve layout leaves free for passthru (drivers/bhyve_argv.py: 4-19 disks).
PASSTHRU_SLOTS = range(19, 3, -1)
# Keys that only matter when vm-bhyve creates a guest or for its own bookkeeping.
CREATE_ONLY = {"zfs_dataset_opts", "zfs_zvol_opts", "guest_version", "arch", "linux_kernel"}
SLOT_KEYS = {"hostbridge_slot", "lpc_slot", "disk_slot_start", "install_slot", "network_slot_start",
             "passthru_slot_start", "virt_random_slot", "fbuf_slot", "xhci_slot", "sound_slot", "virt_console_slot"}
FIXED_LAYOUT = "bHype uses its own fixed PCI slot layout (drivers/bhyve_argv.py)"


def truthy(value: str) -> bool:
    """vm-bhyve's ``util::checkyesno`` reading: anything but empty/no/off/false/0."""
    return value.strip().lower() not in FALSE


@dataclass(frozen=True)
class Unmapped:
    """A key bHype does not carry over: for whom, which key, its value, why."""

    owner: str
    key: str
    value: str
    reason: str


@dataclass(frozen=True)
class DiskSource:
    """Where an imported disk is now: ``file`` (path) or ``zvol`` (dataset, /dev/zvol path)."""

    index: int
    volume: str
    kind: str
    path: str
    dataset: str | None = None
    sparse: bool = False


@dataclass
class GuestPlan:
    """What importing one guest means: spec data, disks to adopt, NVRAM, what is lost."""

    name: str
    directory: Path
    spec: dict[str, Any]
    disks: list[DiskSource] = field(default_factory=list)
    nvram: str | None = None
    unmapped: list[Unmapped] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)
    switches: list[str] = field(default_factory=list)


SizeOf = Callable[[DiskSource], int | None]


class _Mapper:
    """One guest's keys, consumed as they are mapped; the rest become :class:`Unmapped`."""

    def __init__(self, guest: GuestConf, size_of: SizeOf | None, template: bool) -> None:
        self.guest, self.conf, self.size_of, self.template = guest, guest.conf.values, size_of, template
        self.used: set[str] = set()
        owner = f"template {guest.name}" if template else guest.name
        self.plan = GuestPlan(guest.name, guest.directory, {"name": guest.name})
        self.owner = owner

    def get(self, key: str, default: str = "") -> str:
        self.used.add(key)
        return self.conf.get(key, default)

    def lose(self, key: str, reason: str) -> None:
        self.used.add(key)
        if key in self.conf and self.conf[key] != "":
            self.plan.unmapped.append(Unmapped(self.owner, key, self.conf[key], reason))

    def refuse(self, message: str) -> None:
        self.plan.refused.append(message)

    # -------------------------------------------------------------------------------------
    def run(self) -> GuestPlan:
        spec = self.plan.spec
        spec["description"] = "imported from vm-bhyve"
        self._boot(spec)
        self._cpu(spec)
        memory = self.get("memory")
        try:
            spec["memory"] = format_size(parse_size(memory)) if memory else "256M"  # bhyve(8) -m default
        except ValueError as exc:
            self.refuse(f"memory: {exc}")
        spec["clock"] = "utc" if truthy(self.get("utctime", "yes")) else "localtime"
        uuid = self.get("uuid")
        if uuid:
            spec["uuid"] = uuid
        elif not self.template:
            self.plan.unmapped.append(Unmapped(self.owner, "uuid", "", "none set: bHype generates one, so the "
                                               "guest's SMBIOS UUID changes once (vm-bhyve would too)"))
        comports = self.get("comports", "com1").split()
        spec["serial"] = "com1" in comports or not comports
        for port in comports:
            if port != "com1":
                self.plan.unmapped.append(Unmapped(self.owner, "comports", port, "bHype gives a VM one serial "
                                                   "console (com1)"))
        spec["rng"] = truthy(self.get("virt_random"))
        extra: list[str] = []
        self._disks(spec)
        self._nics(spec)
        self._graphics(spec)
        self._passthru(spec, extra)
        self._simple_losses()
        if truthy(self.get("wired_memory")) and "-S" not in extra:
            extra.append("-S")  # bhyve(8) -S: wire guest memory, as vm-bhyve passes it
        options = self.get("bhyve_options")
        if options:
            extra.extend(shlex.split(options))
        if extra:
            spec["extra"] = {"bhyve": extra}
        for key, value in self.conf.items():
            if key not in self.used:
                self.plan.unmapped.append(Unmapped(self.owner, key, value, "not a vm-bhyve option bHype knows"))
        return self.plan

    def _boot(self, spec: dict[str, Any]) -> None:
        loader = self.get("loader")
        legacy_uefi = self.get("uefi")  # vm-bhyve before 1.2: uefi=yes|csm
        guest = self.get("guest")
        if not loader and truthy(legacy_uefi):
            loader = "uefi-csm" if "csm" in legacy_uefi.lower() else "uefi"
        if guest:
            spec["os_type"] = GUEST_OS.get(guest.split("-")[0].lower(), "other")
        boot: dict[str, Any] = {}
        if loader in ("uefi-devel", "uefi-custom"):
            self.plan.unmapped.append(Unmapped(self.owner, "loader", loader, "bHype boots the packaged "
                                               "edk2-bhyve firmware: imported as uefi"))
            loader = "uefi"
        if loader not in ("uefi", "uefi-csm", "bhyveload", "grub"):
            self.refuse(f"loader: {loader!r} is not a vm-bhyve loader bHype can boot "
                        "(bhyveload, grub, uefi, uefi-csm)")
            loader = "uefi"
        boot["mode"] = loader
        if loader == "bhyveload" and "os_type" not in spec:
            spec["os_type"] = "freebsd"  # bhyveload(8) boots only FreeBSD
        timeout = self.get("loader_timeout")
        env: dict[str, str] = {}
        if loader == "bhyveload":
            # lib/vm-guest guest::load always passes -e autoboot_delay=<loader_timeout, default 3>.
            env["autoboot_delay"] = timeout if timeout.isdigit() else "3"
            args = shlex.split(self.get("bhyveload_args"))
            while args:
                arg = args.pop(0)
                if arg == "-e" and args:
                    key, _, value = args.pop(0).partition("=")
                    env[key] = value
                elif arg.startswith("-e") and "=" in arg:
                    key, _, value = arg[2:].partition("=")
                    env[key] = value
                else:
                    self.plan.unmapped.append(Unmapped(self.owner, "bhyveload_args", arg,
                                                       "only -e name=value loader variables are carried over"))
            self.lose("bhyveload_loader", "bHype runs bhyveload(8) with its default /boot/userboot.so")
        else:
            self.lose("loader_timeout", "only used with bhyveload in bHype")
            self.lose("bhyveload_args", "only used with loader bhyveload")
            self.lose("bhyveload_loader", "only used with loader bhyveload")
        if env:
            boot["loader_env"] = env
        if loader == "grub":
            partition = self.get("grub_run_partition")
            if partition:
                boot["grub_root"] = f"hd0,{partition}"  # vm-bhyve: -r hd0,<grub_run_partition>
            for key in sorted(k for k in self.conf if k.startswith("grub_run") and k[8:].isdigit()):
                self.lose(key, "bHype's grub-bhyve boots the guest's own grub.cfg (or a host kernel); "
                               "custom grub commands are not carried over")
            self.lose("grub_run_dir", "grub-bhyve -d is only used for a host kernel in bHype")
            self.lose("grub_run_file", "grub-bhyve -g is not used by bHype")
            self.lose("grub_commands", "custom grub command files are not carried over")
        else:
            self.lose("grub_run_partition", "only used with loader grub")
        for key in [k for k in self.conf if k.startswith("grub_install")]:
            self.used.add(key)  # install-time only (vm install): nothing to carry over
        if loader == "uefi":
            uefi_vars = truthy(self.get("uefi_vars"))
            if uefi_vars and not self.template:
                self.plan.nvram = str(self.guest.directory / "uefi-vars.fd")
            elif not self.template:
                self.plan.unmapped.append(Unmapped(self.owner, "uefi_vars", self.conf.get("uefi_vars", "no"),
                                                   "bHype always keeps UEFI variables: the VM gets a fresh "
                                                   "store from BHYVE_UEFI_VARS.fd"))
        else:
            self.lose("uefi_vars", "only used with uefi")
        spec["boot"] = boot

    def _cpu(self, spec: dict[str, Any]) -> None:
        cpu: dict[str, int] = {}
        for key, name in (("cpu", "count"), ("cpu_sockets", "sockets"), ("cpu_cores", "cores"),
                          ("cpu_threads", "threads")):
            value = self.get(key)
            if value.isdigit():
                cpu[name] = int(value)
            elif value:
                self.refuse(f"{key}: {value!r} is not a number")
        spec["cpus"] = cpu or {"count": 1}

    def _disks(self, spec: dict[str, Any]) -> None:
        disks = []
        index = 0
        while f"disk{index}_type" in self.conf or f"disk{index}_name" in self.conf:
            disk = self._disk(index)
            if disk is not None:
                disks.append(disk)
            index += 1
        self.lose("ahci_device_limit", "bHype gives each disk its own controller")
        spec["disks"] = disks

    def _disk(self, index: int) -> dict[str, Any] | None:
        prefix = f"disk{index}"
        kind, name = self.get(f"{prefix}_type"), self.get(f"{prefix}_name")
        dev, opts = self.get(f"{prefix}_dev", "file") or "file", self.get(f"{prefix}_opts")
        self.lose(f"{prefix}_slot", FIXED_LAYOUT)
        size_text = self.get(f"{prefix}_size")
        if kind not in ("virtio-blk", "ahci-hd", "nvme"):
            self.plan.unmapped.append(Unmapped(self.owner, f"{prefix}_type", kind, "bHype disks are virtio-blk, "
                                               "ahci-hd or nvme (an ahci-cd disk is left out)"))
            return None
        stem = name.rsplit("/", 1)[-1].removesuffix(".img")
        volume = stem if NAME_RE.match(stem) else f"disk{index}"
        disk: dict[str, Any] = {"bus": kind, "volume": volume}
        for opt in [o for o in opts.split(",") if o]:
            key, _, value = opt.partition("=")
            if key == "sectorsize" and value.split("/")[0] in ("512", "4096"):
                disk["sectorsize"] = int(value.split("/")[0])
                if "/" in value:
                    self.plan.unmapped.append(Unmapped(self.owner, f"{prefix}_opts", opt, "the physical "
                                                       "sector size is not carried over"))
            else:
                self.plan.unmapped.append(Unmapped(self.owner, f"{prefix}_opts", opt, "bHype sets no block "
                                                   "options other than sectorsize (512 or 4096)"))
        if self.template:
            if size_text:
                disk["size"] = size_text
            return disk
        source = self._source(index, volume, name, dev)
        if source is None:
            return None
        size = self.size_of(source) if self.size_of else None
        if size is None:
            self.refuse(f"{prefix}: {source.path} does not exist or its size cannot be read")
            return None
        if size % MIB or size < MIB:
            self.refuse(f"{prefix}: {source.path} is {size} bytes, not a whole number of MiB")
            return None
        disk["size"] = format_size(size)
        self.plan.disks.append(source)
        return disk

    def _source(self, index: int, volume: str, name: str, dev: str) -> DiskSource | None:
        store = self.guest.datastore
        plain = bool(name) and "/" not in name and name not in (".", "..")
        if dev in ("file", "zvol", "sparse-zvol") and not plain:
            # vm-bhyve joins these onto the guest's directory/dataset: a '/' or '..' would
            # reach outside it, so such a name is refused rather than followed.
            self.refuse(f"disk{index}_name: {name!r} must be a plain name for disk{index}_dev={dev}")
            return None
        if dev == "file":
            return DiskSource(index, volume, "file", str(self.guest.directory / name))
        if dev in ("zvol", "sparse-zvol"):
            if store.dataset is None:
                self.refuse(f"disk{index}: a {dev} disk needs a zfs: datastore (vm_dir=\"zfs:pool/dataset\")")
                return None
            dataset = f"{store.dataset}/{self.guest.name}/{name}"
            return DiskSource(index, volume, "zvol", f"/dev/zvol/{dataset}", dataset, dev == "sparse-zvol")
        if dev == "custom":
            if not name.startswith("/") or any(part in ("", ".", "..") for part in name.split("/")[1:]):
                self.refuse(f"disk{index}_name: {name!r} must be an absolute, normalised path for a custom disk")
                return None
            if name.startswith("/dev/zvol/"):
                return DiskSource(index, volume, "zvol", name, name[len("/dev/zvol/"):])
            return DiskSource(index, volume, "file", name)
        self.refuse(f"disk{index}_dev: {dev!r} ({'iSCSI' if dev == 'iscsi' else 'unknown'}) disks cannot be "
                    "adopted by a bHype datastore")
        return None

    def _nics(self, spec: dict[str, Any]) -> None:
        nics = []
        index = 0
        while f"network{index}_type" in self.conf:
            prefix = f"network{index}"
            model = self.get(f"{prefix}_type")
            nic: dict[str, Any] = {"model": model if model in ("virtio-net", "e1000") else "virtio-net"}
            if model not in ("virtio-net", "e1000"):
                self.plan.unmapped.append(Unmapped(self.owner, f"{prefix}_type", model,
                                                   "bHype NICs are virtio-net or e1000: imported as virtio-net"))
            switch = self.get(f"{prefix}_switch")
            if switch:
                nic["switch"] = switch
                if switch not in self.plan.switches:
                    self.plan.switches.append(switch)
            mac = self.get(f"{prefix}_mac")
            if mac:
                nic["mac"] = mac
            self.lose(f"{prefix}_device", "bHype creates the VM's tap itself at each start")
            self.lose(f"{prefix}_name", "bHype names taps itself")
            if truthy(self.conf.get(f"{prefix}_span", "")):
                self.lose(f"{prefix}_span", "bHype has no SPAN ports")
            self.used.add(f"{prefix}_span")
            self.lose(f"{prefix}_slot", FIXED_LAYOUT)
            nics.append(nic)
            index += 1
        spec["nics"] = nics

    def _graphics(self, spec: dict[str, Any]) -> None:
        graphics: dict[str, Any] = {"vnc": truthy(self.get("graphics"))}
        resolution = self.get("graphics_res")
        if resolution in RESOLUTIONS:
            graphics["resolution"] = resolution
        elif resolution:
            self.plan.unmapped.append(Unmapped(self.owner, "graphics_res", resolution, "not a resolution bHype offers"))
        elif graphics["vnc"]:
            graphics["resolution"] = "800x600"  # vm-bhyve's default (config.sample)
        # config.sample graphics_wait: "auto" (the default) waits on the first boot of an install
        # only, "yes" on every boot: bHype's graphics.wait true and "always" (issue 14).
        wait = (self.get("graphics_wait", "auto") or "auto").lower()
        if not graphics["vnc"]:
            graphics["wait"] = False
        elif wait == "auto":
            graphics["wait"] = True
        else:
            graphics["wait"] = "always" if truthy(wait) else False
        vga = self.get("graphics_vga")
        if vga in ("io", "on", "off"):
            graphics["vga"] = vga
        elif vga:
            self.plan.unmapped.append(Unmapped(self.owner, "graphics_vga", vga, "must be io, on or off"))
        password = self.get("vnc_password")
        if password:
            if len(password) <= 8 and "," not in password:
                graphics["password"] = password
            else:
                self.plan.unmapped.append(Unmapped(self.owner, "vnc_password", "(hidden)", "VNC uses at most 8 "
                                                   "characters and no comma: bHype generates a new password"))
        graphics["tablet"] = truthy(self.get("xhci_mouse")) if "xhci_mouse" in self.conf else True
        self.lose("graphics_port", "bHype allocates the VNC port and relays viewers through its web console")
        self.lose("graphics_listen", "bHype's VNC listens on 127.0.0.1 only (reference 9.3)")
        spec["graphics"] = graphics

    def _passthru(self, spec: dict[str, Any], extra: list[str]) -> None:
        taken = {4 + i for i in range(len(spec.get("disks", [])))}
        free = [slot for slot in PASSTHRU_SLOTS if slot not in taken]
        index = 0
        while f"passthru{index}" in self.conf:
            value = self.get(f"passthru{index}")
            index += 1
            if not value:
                continue
            device, _, slot = value.partition("=")
            where = slot or (f"{free.pop(0)}:0" if free else "")
            if not re.match(r"^\d+/\d+/\d+$", device) or not where:
                self.plan.unmapped.append(Unmapped(self.owner, f"passthru{index - 1}", value,
                                                   "not a B/S/F device with a free slot"))
                continue
            # bhyve(8): -s slot,passthru,B/S/F needs wired memory (-S); vm-bhyve adds both.
            extra += ["-s", f"{where},passthru,{device}"]
            if "-S" not in extra:
                extra.append("-S")

    def _simple_losses(self) -> None:
        hostbridge = self.get("hostbridge", "standard") or "standard"
        if hostbridge not in ("standard", ""):
            self.plan.unmapped.append(Unmapped(self.owner, "hostbridge", hostbridge, "bHype always puts the "
                                               "standard hostbridge at slot 0"))
        self.used.add("ignore_bad_msr")  # bHype always passes -w (bhyve(8): ignore unimplemented MSRs)
        for key in SLOT_KEYS:
            self.lose(key, FIXED_LAYOUT)
        for key in CREATE_ONLY:
            self.used.add(key)  # only used when vm-bhyve creates or installs a guest
        self.lose("debug", "bHype always logs bhyve's output")
        self.lose("prestart", "bHype runs no per-VM scripts (use a plugin's bhype_vm_before_start hook)")
        self.lose("priority", "bHype does not renice bhyve")
        self.lose("nice", "bHype does not renice bhyve")
        for key in ("sound", "sound_play", "sound_rec", "sound_req"):
            if key == "sound" and not truthy(self.conf.get("sound", "")):
                self.used.add(key)
                continue
            self.lose(key, "bHype has no sound device")
        for key in ("limit_pcpu", "limit_rbps", "limit_wbps", "limit_riops", "limit_wiops"):
            self.lose(key, "bHype sets no rctl(8) limits")
        for key in [k for k in self.conf if k.startswith("virt_console") and k[12:].isdigit()]:
            self.lose(key, "bHype has no virtio-console ports")
        for key in [k for k in self.conf if k.endswith("_size") and k.startswith("disk") and not self.template]:
            self.used.add(key)  # template-only (config.sample: stripped from real guests)


def map_guest(guest: GuestConf, size_of: SizeOf | None = None, *, template: bool = False) -> GuestPlan:
    """Map one guest (or, with ``template``, a template: no disk paths, ``diskN_size`` kept).

    :param size_of: bytes of an existing disk (``None`` when absent); only for guests.
    """
    return _Mapper(guest, size_of, template).run()


def autostart_for(name: str, vm_list: list[str], delay: int) -> dict[str, Any] | None:
    """rc.conf ``vm_list``/``vm_delay`` (vm-bhyve rc.d/vm ``vm startall``) as autostart data:
    listed VMs start in list order, ``vm_delay`` seconds apart."""
    if name not in vm_list:
        return None
    return {"enabled": True, "order": (vm_list.index(name) + 1) * 10, "delay": min(delay, 3600)}
