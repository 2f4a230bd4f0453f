"""Pure parsers for the outputs ``bhype doctor`` reads (sysctl(8), QEMU ``--version``)."""

from __future__ import annotations

import re

# qemu-system-x86_64(1) / qemu-img(1) ``--version``: first line
# "QEMU emulator version 7.2.22 (Debian 1:7.2+dfsg-7+deb12u18+b3)" or "qemu-img version 7.2.22 (…)".
_QEMU_VERSION = re.compile(r"\bversion\s+(\d+\.\d+(?:\.\d+)?)")
# OpenZFS module version, e.g. "2.2.6-FreeBSD_g33174af15" (zfs(8) ``zfs version`` prints the same
# string after "zfs-kmod-").
_ZFS_VERSION = re.compile(r"^(\d+\.\d+(?:\.\d+)?)")


def parse_sysctl(text: str) -> dict[str, str]:
    """Parse sysctl(8) output in its default ``name: value`` form, one variable per line.

    Lines without ``": "`` (continuations of multi-line values) are ignored; a value may itself
    contain ``": "``, so only the first one separates.
    """
    values: dict[str, str] = {}
    for line in text.splitlines():
        name, separator, value = line.partition(": ")
        if separator and name and " " not in name:
            values[name.strip()] = value.strip()
    return values


def _int(text: str | None) -> int | None:
    if text is None:
        return None
    try:
        return int(text, 0)
    except ValueError:
        return None


def vmx_capability(values: dict[str, str]) -> tuple[bool, str]:
    """Whether bhyve can boot UEFI guests, from the ``hw.vmm.*`` sysctls (and ``hw.model``).

    vmm.ko carries both the Intel (``hw.vmm.vmx.*``) and the AMD (``hw.vmm.svm.*``) trees, so
    the vendor is told by which one initialised: Intel needs ``hw.vmm.vmx.initialized`` = 1 and
    ``hw.vmm.vmx.cap.unrestricted_guest`` = 1 (else bhyve exits with "ROM boot failed:
    unrestricted guest capability not available"); AMD SVM always has the capability once
    ``hw.vmm.svm.num_asids`` and ``hw.vmm.svm.features`` are non-zero. Sources: bhyve(8),
    vmm's vmx.c/svm.c sysctls, vm-bhyve ``util::check_bhyve_support``.

    :returns: ``(ok, detail)``.
    """
    cpu = values.get("hw.model", "this CPU")
    initialized = _int(values.get("hw.vmm.vmx.initialized"))
    asids = _int(values.get("hw.vmm.svm.num_asids"))
    if initialized is None and asids is None:
        return False, f"no hw.vmm sysctls: the vmm module is not loaded ({cpu})"
    if initialized == 1:
        if _int(values.get("hw.vmm.vmx.cap.unrestricted_guest")) == 1:
            return True, f"Intel VT-x with unrestricted guest ({cpu})"
        return False, f"Intel VT-x without unrestricted guest: no UEFI guests, bhyveload only ({cpu})"
    features = _int(values.get("hw.vmm.svm.features"))
    if asids and features:
        return True, f"AMD-V with {asids} ASIDs, unrestricted guest built in ({cpu})"
    return False, f"neither Intel VT-x nor AMD-V is initialised: disabled in the firmware setup? ({cpu})"


def parse_zfs_module_version(text: str) -> str | None:
    """The OpenZFS version in ``sysctl -n vfs.zfs.version.module`` output
    (``2.2.6-FreeBSD_g33174af15`` → ``2.2.6``), or None when empty/unrecognised."""
    match = _ZFS_VERSION.match(text.strip())
    return match.group(1) if match else None


def parse_qemu_version(text: str) -> str | None:
    """The version in the first line of ``qemu-system-x86_64 --version`` or
    ``qemu-img --version`` output, or None."""
    first = text.strip().splitlines()[0] if text.strip() else ""
    match = _QEMU_VERSION.search(first)
    return match.group(1) if match else None
