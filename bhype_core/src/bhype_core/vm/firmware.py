"""The per-VM UEFI variable store (NVRAM): the driver says where its template is and what each
VM's copy is called (:meth:`HypervisorDriver.firmware_rules`), this module makes the copy.

Creating the copy with the VM makes a missing firmware an error at create time, not at first
start (a driver copies the template itself if the file is missing). No platform names here: a
driver registered by a third party supplies its own rules (issue 12).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bhype_core.drivers.capabilities import FirmwareRules
from bhype_core.errors import BhypeError, NotFound, NotSupported
from bhype_core.spec import VMSpec


class FirmwareMissing(BhypeError):
    """The UEFI variable store template is not installed."""

    code = "firmware_missing"
    http_status = 409


def firmware_rules(driver: Any) -> FirmwareRules:
    """``driver``'s NVRAM rules.

    :raises NotSupported: the driver keeps no UEFI variable store (path ``boot.mode``).
    """
    rules = driver.firmware_rules()
    if rules is None:
        raise NotSupported("boot mode uefi", f"driver {driver.name or type(driver).__name__}", "boot.mode")
    return rules  # type: ignore[no-any-return]


def nvram_template(driver: Any) -> tuple[Path, str]:
    """The UEFI vars template ``driver`` copies and how to install it."""
    rules = firmware_rules(driver)
    return Path(rules.nvram_template), rules.install_hint


def nvram_name(driver: Any) -> str:
    """The file name of the VM's own UEFI variable store under ``driver``."""
    return firmware_rules(driver).nvram_file


def needs_nvram(spec: VMSpec) -> bool:
    """Only boot mode ``uefi`` keeps variables (bhyve's CSM ROM and SeaBIOS have none)."""
    return spec.boot.mode == "uefi"


def create_nvram(spec: VMSpec, store: Any, driver: Any) -> Path | None:
    """Copy the vars template into the VM's directory through its storage backend (the
    directory may be on the host the runner reaches) and return the copy, or ``None`` when the
    boot mode has no NVRAM. Never share the template itself: bhyve(8) EXAMPLES.

    :raises FirmwareMissing: the template is not installed on the host (names the package).
    :raises NotSupported: the driver has no UEFI variable store.
    """
    if not needs_nvram(spec):
        return None
    template, install = nvram_template(driver)
    try:
        return store.install_vm_file(spec.name, template, nvram_name(driver), 0o600)  # type: ignore[no-any-return]
    except NotFound:
        raise FirmwareMissing(
            f"UEFI variable store template {template} is not installed ({install}); needed for boot mode uefi"
        ) from None


def ensure_nvram(spec: VMSpec, store: Any, driver: Any) -> Path | None:
    """:func:`create_nvram` unless the VM already has its copy (boot mode changed to uefi);
    returns the copy only when it was made now (so the caller can undo it)."""
    if not needs_nvram(spec) or store.vm_file_exists(spec.name, nvram_name(driver)):
        return None
    return create_nvram(spec, store, driver)
