"""The per-VM UEFI variable store (NVRAM): where its template is and where each VM's copy goes."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bhype_core.errors import BhypeError, NotFound
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


def nvram_name(platform: str) -> str:
    """The file name of the VM's own UEFI variable store on ``platform``."""
    return NVRAM_FILES["freebsd" if platform == "freebsd" else "linux"]


def needs_nvram(spec: VMSpec) -> bool:
    """Only boot mode ``uefi`` keeps variables (bhyve's CSM ROM and SeaBIOS have none)."""
    return spec.boot.mode == "uefi"


def create_nvram(spec: VMSpec, store: Any, platform: str) -> Path | None:
    """Copy the vars template into the VM's directory through its storage backend (the
    directory may be on the host the runner reaches) and return the copy, or ``None`` when the
    boot mode has no NVRAM. Never share the template itself: bhyve(8) EXAMPLES.

    :raises FirmwareMissing: the template is not installed on the host (names the package).
    """
    if not needs_nvram(spec):
        return None
    template, install = nvram_template(platform)
    try:
        return store.install_vm_file(spec.name, template, nvram_name(platform), 0o600)  # type: ignore[no-any-return]
    except NotFound:
        raise FirmwareMissing(
            f"UEFI variable store template {template} is not installed ({install}); needed for boot mode uefi"
        ) from None


def ensure_nvram(spec: VMSpec, store: Any, platform: str) -> Path | None:
    """:func:`create_nvram` unless the VM already has its copy (boot mode changed to uefi);
    returns the copy only when it was made now (so the caller can undo it)."""
    if not needs_nvram(spec) or store.vm_file_exists(spec.name, nvram_name(platform)):
        return None
    return create_nvram(spec, store, platform)
