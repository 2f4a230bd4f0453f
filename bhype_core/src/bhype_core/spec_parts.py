"""The parts of a VM spec (CPUs, boot, disks, NICs, graphics, ...) and the context they check against."""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    field_validator,
    model_validator,
)

from bhype_core.disk_images import is_image_name
from bhype_core.macs import normalize_mac
from bhype_core.units import MIB, TIB, format_size, parse_size

if TYPE_CHECKING:
    from bhype_core.spec import VMSpec

OsType = Literal["freebsd", "openbsd", "netbsd", "linux", "windows", "other"]
BootMode = Literal["uefi", "uefi-csm", "bhyveload", "grub"]
DiskBus = Literal["virtio-blk", "ahci-hd", "nvme"]
NicModel = Literal["virtio-net", "e1000"]

MAX_CPUS = 256
MAX_DISKS = 16  # PCI slots 4-19 (see drivers/bhyve_argv.py for the slot layout)
MAX_NICS = 8  # PCI slots 20-27
MIN_MEMORY = 32 * MIB
MAX_DISK_SIZE = 64 * TIB

# One name rule for VMs, volumes, switches and templates: it ends up in paths, argv and
# /dev/vmm, so it must start with a letter or digit (never ".", ".." or an option-like "-x").
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
ISO_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.+-]{0,254}$")
OWNER_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,31}$")
TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,31}$")
GRUB_ROOT_RE = re.compile(r"^(host|(hd|cd)\d{1,2}(,(msdos|gpt)\d{1,3})?)$")
SSH_KEY_RE = re.compile(
    r"^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-nistp(256|384|521)|sk-[a-z0-9@.-]+) [A-Za-z0-9+/]+=*( [^\x00-\x1f]*)?$"
)
LOADER_VAR_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.]{0,63}$")

# bhyve(8) "Framebuffer device backends": minimum 640x480, maximum 3840x2160 (1920x1200 on older
# releases, reference 9.2). The edk2 bhyve GOP offers the configured size as its first mode, so
# any size in range works; we allow the common modes guests and noVNC handle well.
RESOLUTIONS = (
    "640x480", "800x600", "1024x768", "1280x720", "1280x800", "1280x1024", "1366x768",
    "1440x900", "1600x900", "1600x1200", "1680x1050", "1920x1080", "1920x1200",
    "2560x1440", "2560x1600", "3840x2160",
)  # fmt: skip


@dataclass(frozen=True)
class SpecContext:
    """What validation needs to know about the host; ``None`` collections skip that check.

    ``existing_names``/``existing_macs``/``existing_uuids`` belong to *other* VMs (leave the edited VM's own
    out). ``checks`` are extra rules (e.g. a driver's), each returning ``(path, message)``
    pairs for a spec that passed the core rules. ``rng`` makes generated MACs and VNC
    passwords reproducible in tests. ``vnc_password`` says whether the host's driver guards
    VNC with a password (bhyve's fbuf on loopback TCP): only then is one generated for a spec
    without one (QEMU serves VNC on a private unix socket and uses none, issue 11).
    """

    host_memory: int | None = None
    host_cpus: int | None = None
    existing_names: Collection[str] = ()
    existing_macs: Collection[str] = ()
    existing_uuids: Collection[str] = ()
    known_templates: Collection[str] | None = None
    known_isos: Collection[str] | None = None
    known_switches: Collection[str] | None = None
    checks: Sequence[Callable[[VMSpec], Iterable[tuple[str, str]]]] = ()
    vnc_password: bool = True
    rng: random.Random | None = field(default=None, compare=False)


def context_of(info: ValidationInfo) -> SpecContext:
    """The ``SpecContext`` a validator runs under (an empty one when none was given)."""
    return info.context if isinstance(info.context, SpecContext) else SpecContext()


def _check_name(value: str) -> str:
    if not NAME_RE.match(value):
        raise ValueError("must be 1-63 letters, digits, '-', '_' or '.', starting with a letter or digit")
    return value


def text_check(limit: int) -> Callable[[str], str]:
    """A validator for free text: at most ``limit`` characters, no NUL."""

    def check(value: str) -> str:
        if len(value) > limit:
            raise ValueError(f"must be at most {limit} characters")
        if "\x00" in value:
            raise ValueError("must not contain NUL characters")
        return value

    return check


def _check_arg(value: str) -> str:
    if not value or len(value) > 1024 or any(ord(c) < 32 or ord(c) == 127 for c in value):
        raise ValueError("each argument must be 1-1024 printable characters")
    return value


def _check_host_path(value: str) -> str:
    # grub.cfg and -kernel take the path verbatim: keep it absolute, plain and unambiguous.
    if not value.startswith("/") or any(part in ("", ".", "..") for part in value.split("/")[1:]):
        raise ValueError("must be an absolute, normalised host path")
    if re.search(r"[\s,'\"\\;]", value) or len(value) > 1024:
        raise ValueError("must not contain whitespace, commas, quotes, backslashes or semicolons")
    return value


Size = Annotated[int, BeforeValidator(parse_size), PlainSerializer(format_size, return_type=str)]
Name = Annotated[str, AfterValidator(_check_name)]
Arg = Annotated[str, AfterValidator(_check_arg)]


class SpecModel(BaseModel):
    """Base of every spec model."""

    # Unknown keys are errors: in a VM spec they are nearly always typos.
    model_config = ConfigDict(extra="forbid")


class CpuSpec(SpecModel):
    """vCPUs: ``count`` = ``sockets * cores * threads`` (bhyve(8) ``-c``); give either or both."""

    count: int | None = Field(default=None, ge=1, le=MAX_CPUS)
    sockets: int = Field(default=1, ge=1, le=MAX_CPUS)
    cores: int | None = Field(default=None, ge=1, le=MAX_CPUS)
    threads: int = Field(default=1, ge=1, le=MAX_CPUS)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        if isinstance(data, bool):
            raise ValueError("must be a count or an object with count/sockets/cores/threads")
        if isinstance(data, int) or (isinstance(data, str) and data.strip().isdigit()):
            return {"count": int(data)}
        return data

    @model_validator(mode="after")
    def _topology(self, info: ValidationInfo) -> CpuSpec:
        # bhyve(8) -c: each of sockets/cores/threads defaults to 1 and numcpus, when omitted,
        # is their product. A bare count becomes one socket of `count` cores.
        if self.cores is None:
            per_core = self.sockets * self.threads
            if self.count is not None and self.count % per_core:
                raise ValueError(f"count {self.count} is not a multiple of sockets*threads = {per_core}")
            self.cores = self.count // per_core if self.count is not None else 1
        product = self.sockets * self.cores * self.threads
        if self.count is None:
            self.count = product
        if self.count != product:
            raise ValueError(f"count {self.count} must equal sockets*cores*threads = {product}")
        if self.count > MAX_CPUS:
            raise ValueError(f"at most {MAX_CPUS} vCPUs")
        host = context_of(info).host_cpus
        if host and self.count > host:
            # bhyve refuses more vCPUs than hw.vmm.maxcpu (defaults to the host's CPUs): exit 4.
            raise ValueError(f"{self.count} vCPUs requested but the host has only {host}")
        return self


class BootSpec(SpecModel):
    """How the guest boots. ``kernel``/``initrd``/``cmdline`` (host paths) only with ``grub``."""

    mode: BootMode = "uefi"
    grub_root: str | None = None
    kernel: Annotated[str, AfterValidator(_check_host_path)] | None = None
    initrd: Annotated[str, AfterValidator(_check_host_path)] | None = None
    cmdline: Annotated[str, AfterValidator(text_check(2048))] = ""
    loader_env: dict[str, str] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"mode": data} if isinstance(data, str) else data

    @field_validator("grub_root")
    @classmethod
    def _grub_root(cls, value: str | None) -> str | None:
        if value is not None and not GRUB_ROOT_RE.match(value):
            raise ValueError("must be a grub device such as hd0,msdos1, hd0,gpt2, cd0 or host")
        return value

    @field_validator("cmdline")
    @classmethod
    def _cmdline(cls, value: str) -> str:
        if any(ord(c) < 32 for c in value):
            raise ValueError("must be a single line")
        return value

    @field_validator("loader_env")
    @classmethod
    def _loader_env(cls, value: dict[str, str]) -> dict[str, str]:
        for key, item in value.items():
            if not LOADER_VAR_RE.match(key):
                raise ValueError(f"invalid loader variable name {key!r}")
            if len(item) > 1024 or any(ord(c) < 32 for c in item):
                raise ValueError(f"loader variable {key!r} must be one line of at most 1024 characters")
        return value


class DiskSpec(SpecModel):
    """One virtual disk: size, emulated bus and the storage volume backing it."""

    size: Size
    bus: DiskBus = "virtio-blk"
    volume: Name | None = None
    sectorsize: Literal[512, 4096] | None = None
    # A cloud image in the ISO library (.qcow2/.raw/.img) copied onto the disk at create time
    # (bhype_core.disk_images); the stored spec drops it once the disk is written. Left out of
    # the serialised spec when unset, so every stored spec has the same shape.
    source: str | None = Field(None, exclude_if=lambda value: value is None)

    @field_validator("size")
    @classmethod
    def _size(cls, value: int) -> int:
        if value < MIB or value % MIB:
            raise ValueError("must be a whole number of MiB, at least 1M")
        if value > MAX_DISK_SIZE:
            raise ValueError(f"must be at most {format_size(MAX_DISK_SIZE)}")
        return value

    @field_validator("source")
    @classmethod
    def _source(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if not ISO_RE.match(value) or not is_image_name(value):
            raise ValueError("must be the file name of a .qcow2, .raw or .img image in the ISO library")
        known = context_of(info).known_isos
        if known is not None and value not in known:
            raise ValueError(f"no disk image named {value!r} in the ISO library")
        return value


class NicSpec(SpecModel):
    """One network interface: model, virtual switch, MAC (generated when absent), VLAN."""

    model: NicModel = "virtio-net"
    switch: Name | None = None
    mac: str | None = None
    vlan: int | None = Field(default=None, ge=1, le=4094)

    @field_validator("switch")
    @classmethod
    def _switch(cls, value: str | None, info: ValidationInfo) -> str | None:
        known = context_of(info).known_switches
        if value is not None and known is not None and value not in known:
            raise ValueError(f"no virtual switch named {value!r}")
        return value

    @field_validator("mac")
    @classmethod
    def _mac(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        mac = normalize_mac(value)
        if mac in {m.lower() for m in context_of(info).existing_macs}:
            raise ValueError(f"{mac} is already used by another VM")
        return mac


class GraphicsSpec(SpecModel):
    """VNC console (bhyve fbuf, UEFI only): resolution, wait-for-client, password.

    ``wait`` holds the guest until a viewer connects (bhyve fbuf ``wait``): ``true`` on the
    first boot of an install start only (``bhype vm start --install``; vm-bhyve strips ``wait``
    after the first run too), ``"always"`` on every boot, ``false`` never (issue 14).
    """

    vnc: bool = False
    resolution: str = "1024x768"
    wait: bool | Literal["always"] = False
    password: str | None = None
    tablet: bool = True
    vga: Literal["io", "on", "off"] = "io"

    @field_validator("resolution")
    @classmethod
    def _resolution(cls, value: str) -> str:
        if value not in RESOLUTIONS:
            raise ValueError(f"must be one of {', '.join(RESOLUTIONS)}")
        return value

    @field_validator("password")
    @classmethod
    def _password(cls, value: str | None) -> str | None:
        if value is None:
            return None
        # RFB security type 2 keys DES with the first 8 characters only (reference 9.2); fbuf
        # options are comma-separated, so a comma would cut the password short.
        if len(value) > 8:
            raise ValueError("VNC uses only the first 8 characters: use at most 8")
        if "," in value or any(not 33 <= ord(c) <= 126 for c in value):
            raise ValueError("must be printable ASCII without spaces or commas")
        return value

    @property
    def width(self) -> int:
        return int(self.resolution.split("x")[0])

    @property
    def height(self) -> int:
        return int(self.resolution.split("x")[1])


class AutostartSpec(SpecModel):
    """Start with the host: lower ``order`` first, then wait ``delay`` seconds; stopped in
    reverse order at host shutdown, forced off after ``stop_timeout`` seconds."""

    enabled: bool = False
    order: int = Field(default=100, ge=0, le=9999)
    delay: int = Field(default=0, ge=0, le=3600)
    # Host shutdown: seconds to wait for the guest's ACPI shutdown before forcing it off
    # (None: vm.stop_timeout). Guests that ignore ACPI (Windows without tools) need it short.
    stop_timeout: int | None = Field(default=None, ge=1, le=3600)

    @model_validator(mode="before")
    @classmethod
    def _shorthand(cls, data: Any) -> Any:
        return {"enabled": data} if isinstance(data, bool) else data


class CloudInitSpec(SpecModel):
    """NoCloud seed contents (the seed ISO itself is built by the cloud-init feature)."""

    user_data: Annotated[str, AfterValidator(text_check(65536))] = ""
    meta_data: dict[str, Annotated[str, AfterValidator(text_check(1024))]] = Field(default_factory=dict)
    network_config: Annotated[str, AfterValidator(text_check(65536))] | None = None
    ssh_keys: list[str] = Field(default_factory=list, max_length=64)

    @field_validator("ssh_keys")
    @classmethod
    def _ssh_keys(cls, value: list[str]) -> list[str]:
        # One authorized_keys line each (sshd(8) AUTHORIZED_KEYS FILE FORMAT): type, base64, comment.
        for index, key in enumerate(value):
            if not SSH_KEY_RE.match(key) or len(key) > 16384:
                raise ValueError(f"key {index} must be one 'ssh-ed25519 AAAA... comment' line")
        return value

    @field_validator("user_data")
    @classmethod
    def _user_data(cls, value: str) -> str:
        # cloud-init picks the format from the first line; anything else is silently ignored.
        if value and not value.startswith(("#cloud-config", "#!", "#include", "Content-Type:")):
            raise ValueError("must start with '#cloud-config', '#!', '#include' or 'Content-Type:'")
        return value


class ExtraOptions(SpecModel):
    """Raw hypervisor arguments appended before the VM name. Admin only (the caller checks)."""

    bhyve: list[Arg] = Field(default_factory=list, max_length=64)
    qemu: list[Arg] = Field(default_factory=list, max_length=64)
