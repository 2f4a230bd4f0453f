"""The VM spec: one validated description of a VM that both hypervisor drivers turn into argv.

``VMSpec`` is built from the parts in :mod:`bhype_core.spec_parts` (re-exported here);
:func:`validate_spec` is the one entry point that turns raw data into a complete spec.
"""

from __future__ import annotations

import hashlib
import secrets
import string
from collections.abc import Mapping
from typing import Annotated, Any, Literal
from uuid import UUID, uuid4

from pydantic import AfterValidator, Field, ValidationError, ValidationInfo, field_validator, model_validator

from bhype_core.errors import ValidationErrors
from bhype_core.macs import BHYVE_OUI, generate_mac, normalize_mac
from bhype_core.spec_parts import (
    ISO_RE,
    MAX_CPUS,
    MAX_DISKS,
    MAX_NICS,
    MIN_MEMORY,
    NAME_RE,
    OWNER_RE,
    RESOLUTIONS,
    TAG_RE,
    AutostartSpec,
    BootMode,
    BootSpec,
    CloudInitSpec,
    CpuSpec,
    DiskBus,
    DiskSpec,
    ExtraOptions,
    GraphicsSpec,
    Name,
    NicModel,
    NicSpec,
    OsType,
    Size,
    SpecContext,
    SpecModel,
    context_of,
    text_check,
)
from bhype_core.units import GIB, MIB, format_size, human_size

__all__ = [
    "BHYVE_OUI", "MAX_CPUS", "MAX_DISKS", "MAX_INSTANCE_NAME", "MAX_NICS", "NAME_RE", "RESOLUTIONS",
    "AutostartSpec", "BootMode", "BootSpec", "CloudInitSpec", "CpuSpec", "DiskBus", "DiskSpec",
    "ExtraOptions", "GraphicsSpec", "NicModel", "NicSpec", "OsType", "SpecContext", "VMSpec",
    "generate_mac", "instance_name", "normalize_mac", "pydantic_errors", "validate_spec",
]  # fmt: skip

# bhyve VM names: 13/14 kernels allow 31 characters (VM_MAX_NAMELEN 32 with the NUL).
INSTANCE_PREFIX = "bhype-"
MAX_INSTANCE_NAME = 31


def instance_name(name: str) -> str:
    """The short, stable name the hypervisor knows a VM by (bhyve vmname, QEMU ``-name``).

    ``bhype-<name>`` when that fits bhyve's 31-character limit, else ``bhype-<first 16>-<8 hex
    of sha256(name)>``. The prefix keeps bHype's instances apart from VMs other tools run on
    the same host (bhyve silently *reuses* an existing /dev/vmm/NAME) and lets reconciliation
    recognise its own; deriving it from the name keeps ``ps``/``bhyvectl --vm=`` readable.
    """
    full = INSTANCE_PREFIX + name
    if len(full) <= MAX_INSTANCE_NAME:
        return full
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    keep = MAX_INSTANCE_NAME - len(INSTANCE_PREFIX) - len(digest) - 1
    return f"{INSTANCE_PREFIX}{name[:keep]}-{digest}"


class VMSpec(SpecModel):
    """Everything that defines a VM, independent of the platform that runs it."""

    name: Name
    uuid: UUID = Field(default_factory=uuid4)
    owner: str | None = None
    description: Annotated[str, AfterValidator(text_check(1024))] = ""
    tags: list[str] = Field(default_factory=list, max_length=32)
    template: Name | None = None
    os_type: OsType = "other"
    cpus: CpuSpec = Field(default_factory=lambda: CpuSpec(count=1))
    memory: Size = GIB
    boot: BootSpec = Field(default_factory=BootSpec)
    clock: Literal["utc", "localtime"] = "utc"
    disks: list[DiskSpec] = Field(default_factory=list, max_length=MAX_DISKS)
    cdrom: str | None = None
    nics: list[NicSpec] = Field(default_factory=list, max_length=MAX_NICS)
    graphics: GraphicsSpec = Field(default_factory=GraphicsSpec)
    serial: bool = True
    rng: bool = True
    autostart: AutostartSpec = Field(default_factory=AutostartSpec)
    cloud_init: CloudInitSpec | None = None
    extra: ExtraOptions = Field(default_factory=ExtraOptions)

    @property
    def instance_name(self) -> str:
        """See :func:`instance_name`."""
        return instance_name(self.name)

    def to_data(self) -> dict[str, Any]:
        """JSON-ready dict (sizes as "2G", UUID as text) that :func:`validate_spec` accepts back."""
        return self.model_dump(mode="json")

    @field_validator("name")
    @classmethod
    def _unique_name(cls, value: str, info: ValidationInfo) -> str:
        ctx = context_of(info)
        if value.lower() in {n.lower() for n in ctx.existing_names}:
            raise ValueError(f"a VM named {value!r} already exists")
        mine = instance_name(value).lower()
        for other in ctx.existing_names:
            if instance_name(other).lower() == mine:
                raise ValueError(f"its hypervisor name {instance_name(value)!r} clashes with VM {other!r}")
        return value

    @field_validator("uuid")
    @classmethod
    def _unique_uuid(cls, value: UUID, info: ValidationInfo) -> UUID:
        # Checked before anything is made: the database's unique index would only refuse the
        # row after the disks were written, with a message about names.
        if str(value).lower() in {str(u).lower() for u in context_of(info).existing_uuids}:
            raise ValueError(f"{value} is already the UUID of another VM")
        return value

    @model_validator(mode="before")
    @classmethod
    def _clock_follows_the_os(cls, data: Any) -> Any:
        # Windows keeps the real-time clock on local time; every other OS expects UTC (bhyve's
        # -u). Only a default: an explicit clock is kept.
        if isinstance(data, dict) and "clock" not in data and data.get("os_type") == "windows":
            return {**data, "clock": "localtime"}
        return data

    @field_validator("owner")
    @classmethod
    def _owner(cls, value: str | None) -> str | None:
        if value is not None and not OWNER_RE.match(value):
            raise ValueError("must be a user name (letters, digits, '_', '.', '-', at most 32)")
        return value

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str]) -> list[str]:
        for tag in value:
            if not TAG_RE.match(tag):
                raise ValueError(f"invalid tag {tag!r}: 1-32 letters, digits, '_', '.', ':' or '-'")
        if len(set(value)) != len(value):
            raise ValueError("tags must be unique")
        return value

    @field_validator("template")
    @classmethod
    def _template(cls, value: str | None, info: ValidationInfo) -> str | None:
        known = context_of(info).known_templates
        if value is not None and known is not None and value not in known:
            raise ValueError(f"no template named {value!r}")
        return value

    @field_validator("memory")
    @classmethod
    def _memory(cls, value: int, info: ValidationInfo) -> int:
        if value % MIB:
            raise ValueError("must be a whole number of MiB")
        if value < MIN_MEMORY:
            raise ValueError(f"must be at least {format_size(MIN_MEMORY)}")
        host = context_of(info).host_memory
        if host and value > host:
            raise ValueError(f"{format_size(value)} is more than the host's {human_size(host)} of RAM")
        return value

    @field_validator("cdrom")
    @classmethod
    def _cdrom(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None:
            return None
        if not ISO_RE.match(value):
            raise ValueError("must be the file name of an ISO in the ISO library (no directories)")
        known = context_of(info).known_isos
        if known is not None and value not in known:
            raise ValueError(f"no ISO named {value!r} in the ISO library")
        return value


def pydantic_errors(exc: ValidationError, prefix: str = "") -> ValidationErrors:
    """Convert a pydantic ``ValidationError`` into bHype's ``ValidationErrors`` (dotted paths)."""
    errors = ValidationErrors()
    for item in exc.errors(include_url=False):
        path = ".".join(str(part) for part in item["loc"])
        if prefix:
            path = f"{prefix}.{path}" if path else prefix
        errors.add(path, _message(item))
    return errors


_MESSAGES = {
    "missing": "is required",
    "extra_forbidden": "is not a known field",
    "model_type": "must be an object",
    "model_attributes_type": "must be an object",
    "dict_type": "must be an object",
    "list_type": "must be a list",
    "int_type": "must be an integer",
    "int_parsing": "must be an integer",
    "bool_type": "must be true or false",
    "bool_parsing": "must be true or false",
    "string_type": "must be a string",
    "uuid_parsing": "must be a UUID",
    "uuid_type": "must be a UUID",
}


def _message(item: Mapping[str, Any]) -> str:
    if item["type"] in _MESSAGES:
        return _MESSAGES[item["type"]]
    limits = item.get("ctx") or {}
    if item["type"] == "greater_than_equal":
        return f"must be at least {limits['ge']}"
    if item["type"] == "less_than_equal":
        return f"must be at most {limits['le']}"
    if item["type"] == "too_long" and "max_length" in limits:
        return f"must have at most {limits['max_length']} items"
    message = str(item["msg"])
    return message.removeprefix("Value error, ")


def _cross_checks(spec: VMSpec) -> list[tuple[str, str]]:
    """Rules spanning several fields; run once every field is valid on its own."""
    problems: list[tuple[str, str]] = []
    boot = spec.boot
    if boot.mode != "grub":
        for key in ("kernel", "initrd", "grub_root"):
            if getattr(boot, key) is not None:
                problems.append((f"boot.{key}", "only used with boot mode grub"))
        if boot.cmdline:
            problems.append(("boot.cmdline", "only used with boot mode grub"))
    if boot.kernel is None:
        if boot.initrd is not None:
            problems.append(("boot.initrd", "needs boot.kernel"))
        if boot.cmdline:
            problems.append(("boot.cmdline", "needs boot.kernel"))
    elif boot.grub_root not in (None, "host"):
        problems.append(("boot.grub_root", "a host kernel boots from grub root 'host'; drop grub_root"))
    if boot.loader_env and boot.mode != "bhyveload":
        problems.append(("boot.loader_env", "only used with boot mode bhyveload"))
    if boot.mode in ("bhyveload", "grub") and not spec.serial:
        # bhyveload(8)/grub-bhyve run their menu on the serial console (-c /dev/nmdmXA).
        problems.append(("serial", f"boot mode {boot.mode} needs the serial console"))
    if spec.graphics.wait and not spec.graphics.vnc:
        problems.append(("graphics.wait", "needs graphics.vnc"))
    seen: dict[str, int] = {}
    for index, disk in enumerate(spec.disks):
        if disk.volume is not None:
            if disk.volume in seen:
                problems.append((f"disks.{index}.volume", f"same volume as disks.{seen[disk.volume]}"))
            seen.setdefault(disk.volume, index)
    macs: dict[str, int] = {}
    for index, nic in enumerate(spec.nics):
        if nic.mac is not None:
            if nic.mac in macs:
                problems.append((f"nics.{index}.mac", f"same MAC as nics.{macs[nic.mac]}"))
            macs.setdefault(nic.mac, index)
    return problems


def _fill_generated(spec: VMSpec, ctx: SpecContext) -> VMSpec:
    """Give every disk a volume name, every NIC a MAC and VNC a password (when the driver uses
    one: ``ctx.vnc_password``), so the stored spec is complete and a second validation changes
    nothing."""
    volumes = {d.volume for d in spec.disks if d.volume}
    disks = []
    for index, disk in enumerate(spec.disks):
        if disk.volume is None:
            n = index
            while f"disk{n}" in volumes:
                n += 1
            volumes.add(f"disk{n}")
            disk = disk.model_copy(update={"volume": f"disk{n}"})
        disks.append(disk)
    taken = {m.lower() for m in ctx.existing_macs} | {n.mac for n in spec.nics if n.mac}
    nics = []
    for nic in spec.nics:
        if nic.mac is None:
            mac = generate_mac(taken, ctx.rng)
            taken.add(mac)
            nic = nic.model_copy(update={"mac": mac})
        nics.append(nic)
    graphics = spec.graphics
    if graphics.vnc and graphics.password is None and ctx.vnc_password:
        alphabet = string.ascii_letters + string.digits
        pick = ctx.rng.choice if ctx.rng else secrets.choice
        graphics = graphics.model_copy(update={"password": "".join(pick(alphabet) for _ in range(8))})
    return spec.model_copy(update={"disks": disks, "nics": nics, "graphics": graphics})


def validate_spec(data: Mapping[str, Any], context: SpecContext | None = None) -> VMSpec:
    """Validate raw spec data (API body, template + overrides, stored JSON) into a ``VMSpec``.

    Every problem is collected with its dotted path (``disks.0.size``, ``nics.1.mac``) and
    raised once as ``ValidationErrors``; field rules run first, cross-field rules and
    ``context.checks`` once every field is valid. Missing UUID, disk volume names, NIC MACs
    (bhyve OUI, unique against ``context.existing_macs``) and the VNC password (unless
    ``context.vnc_password`` is false: the driver uses none) are generated,
    so ``validate_spec(spec.to_data(), same_context)`` returns an equal spec.
    """
    ctx = context or SpecContext()
    if not isinstance(data, Mapping):
        raise ValidationErrors([("", "the VM spec must be an object")])
    try:
        spec = VMSpec.model_validate(dict(data), context=ctx)
    except ValidationError as exc:
        raise pydantic_errors(exc) from None
    errors = ValidationErrors(_cross_checks(spec))
    errors.raise_if_any()
    spec = _fill_generated(spec, ctx)
    for check in ctx.checks:
        for path, message in check(spec):
            errors.add(path, message)
    errors.raise_if_any()
    return spec
