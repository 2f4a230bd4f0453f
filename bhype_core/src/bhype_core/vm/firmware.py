"""The per-VM UEFI variable store (NVRAM): where its template is and where each VM's copy goes."""

from __future__ import annotations

import shutil
from pathlib import Path

from bhype_core.errors import BhypeError
from bhype_core.spec import VMSpec

# The per-VM copy's name in the VM directory, as each driver looks for it: bhyve uses
# vm-bhyve's name (drivers/bhyve.py NVRAM_FILE, reference 1.6), the QEMU driver OVMF's
# (drivers/qemu.py prepare()). A driver copies the template itself if the file is missing;
# creating it with the VM makes a missing firmware an error at create time, not at first start.
NVRAM_FILES = {"freebsd": "uefi-vars.fd", "linux": "OVMF_VARS.fd"}


class FirmwareMissing(BhypeError):
    """The UEFI variable store template is not installed."""

    code = "firmware_missing"
    http_status = 409


def nvram_template(platform: str) -> tuple[Path, str]:
    """The UEFI vars template for ``platform`` and how to install it.

    FreeBSD: edk2-bhyve's ``BHYVE_UEFI_VARS.fd`` (reference 1.6); Linux: Debian's OVMF vars
    image matching the code image QEMU is given (``qemu_argv.find_ovmf``).
    """
    if platform == "freebsd":
        from bhype_core.drivers.bhyve_argv import UEFI_VARS_TEMPLATE

        return Path(UEFI_VARS_TEMPLATE), "pkg install edk2-bhyve"
    from bhype_core.drivers.qemu_argv import OVMF_CANDIDATES, find_ovmf

    found = find_ovmf()
    return Path(found[1] if found else OVMF_CANDIDATES[0][1]), "apt-get install ovmf"


def nvram_path(vm_dir: Path, platform: str) -> Path:
    """Where the VM's own UEFI variable store lives on ``platform``."""
    return vm_dir / NVRAM_FILES["freebsd" if platform == "freebsd" else "linux"]


def needs_nvram(spec: VMSpec) -> bool:
    """Only boot mode ``uefi`` keeps variables (bhyve's CSM ROM and SeaBIOS have none)."""
    return spec.boot.mode == "uefi"


def create_nvram(spec: VMSpec, vm_dir: Path, platform: str) -> Path | None:
    """Copy the vars template into the VM's directory (never share the template itself:
    bhyve(8) EXAMPLES) and return the copy, or ``None`` when the boot mode has no NVRAM.

    :raises FirmwareMissing: the template is not installed (names the package).
    """
    if not needs_nvram(spec):
        return None
    template, install = nvram_template(platform)
    if not template.is_file():
        raise FirmwareMissing(
            f"UEFI variable store template {template} is not installed ({install}); "
            "needed for boot mode uefi"
        )
    target = nvram_path(vm_dir, platform)
    shutil.copyfile(template, target)
    target.chmod(0o600)
    return target


def ensure_nvram(spec: VMSpec, vm_dir: Path, platform: str) -> Path | None:
    """:func:`create_nvram` unless the VM already has its copy (boot mode changed to uefi)."""
    target = nvram_path(vm_dir, platform)
    if needs_nvram(spec) and target.exists():
        return target
    return create_nvram(spec, vm_dir, platform)
