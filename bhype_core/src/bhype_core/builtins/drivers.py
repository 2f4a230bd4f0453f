"""Built-in plugin ``core_drivers``: the bhyve (FreeBSD) and QEMU (Linux, FreeBSD) drivers and
their ``[bhyve]``/``[qemu]`` settings sections."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Literal

from pydantic import Field

from bhype_core.config import Section
from bhype_core.drivers import bhyve_argv
from bhype_core.hookspecs import hookimpl
from bhype_core.registry import DriverEntry, SettingsSection


class BhyveSettings(Section):
    """``[bhyve]``: where the bhyve tools live and how long a start may take."""

    bhyve: str = bhyve_argv.BHYVE
    bhyvectl: str = bhyve_argv.BHYVECTL
    bhyveload: str = bhyve_argv.BHYVELOAD
    grub_bhyve: str = bhyve_argv.GRUB_BHYVE
    firmware_dir: str = Field(bhyve_argv.FIRMWARE_DIR, description="edk2-bhyve images (BHYVE_UEFI_CODE.fd, ...)")
    vmm_dir: str = "/dev/vmm"
    start_grace: float = Field(1.0, gt=0, description="seconds bhyve must survive to count as running")
    start_timeout: float = Field(120.0, gt=0, description="seconds the loader and bhyve may take to start")
    bootindex: bool = Field(False, description="this host's bhyve takes bootindex= and its UEFI firmware honours "
                            "the fw_cfg bootorder: install/rescue boots then put the CD first with it "
                            "(bhyve(8); first release not confirmed, see drivers/bhyve_argv.py)")


class QemuSettings(Section):
    """``[qemu]``: the emulator and its acceleration."""

    binary: str = "qemu-system-x86_64"
    accel: Literal["auto", "tcg", "kvm"] = Field("auto", description="auto = KVM when a probe guest runs well on it")
    machine: Literal["q35", "pc"] = "q35"
    cpu_model: str | None = None
    start_timeout: float = Field(60.0, gt=0, description="seconds QEMU may take to answer on QMP")


def make_bhyve(runtime: Any) -> Any:
    """The bhyve driver for ``runtime``."""
    from bhype_core.drivers.bhyve import BhyveDriver

    return BhyveDriver.from_runtime(runtime)


def make_qemu(runtime: Any) -> Any:
    """The QEMU driver for ``runtime``."""
    from bhype_core.drivers.qemu import QemuDriver

    return QemuDriver.from_runtime(runtime)


@hookimpl
def bhype_register_drivers(register: Callable[[DriverEntry], None]) -> None:
    """bhyve on FreeBSD; QEMU on Linux (and FreeBSD, for testing)."""
    register(DriverEntry("bhyve", make_bhyve, platforms=("freebsd",), description="bhyve(8) with bhyvectl(8)"))
    register(DriverEntry("qemu", make_qemu, platforms=("linux", "freebsd"), description="qemu-system-x86_64 with QMP"))


@hookimpl
def bhype_register_settings(register: Callable[[SettingsSection], None]) -> None:
    """The ``[bhyve]`` and ``[qemu]`` tables."""
    register(SettingsSection("bhyve", BhyveSettings))
    register(SettingsSection("qemu", QemuSettings))
