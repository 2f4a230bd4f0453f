"""FreeBSD host checks for ``bhype doctor``: kernel modules, VT-x/AMD-V, ZFS, UEFI firmware, RACCT.

Every command is a read-only query run through the runner (kldstat(8), sysctl(8), test(1));
the facts follow /work/shared/reference/freebsd-host.md sections 1.6 and 4.
"""

from __future__ import annotations

from typing import Any

from bhype_core.builtins.doctor_parsers import parse_sysctl, parse_zfs_module_version, vmx_capability
from bhype_core.builtins.doctor_probe import probe
from bhype_core.registry import CheckResult

# (module, what bHype needs it for, optional). if_bridge is optional because
# "ifconfig bridge create" loads it on demand; the others are never autoloaded for bhyve.
KERNEL_MODULES: tuple[tuple[str, str, bool], ...] = (
    ("vmm", "the bhyve hypervisor", False),
    ("nmdm", "serial consoles (nmdm(4))", False),
    ("if_tuntap", "tap(4) interfaces for VM NICs", False),
    ("if_bridge", "virtual switches (if_bridge(4))", True),
)

VMM_SYSCTLS = (
    "hw.model",
    "hw.vmm.vmx.initialized",
    "hw.vmm.vmx.cap.unrestricted_guest",
    "hw.vmm.svm.features",
    "hw.vmm.svm.num_asids",
)

# UEFI firmware of the edk2-bhyve package (port sysutils/edk2, flavor bhyve) and the
# compatibility names in uefi-firmware/ that older packages (uefi-edk2-bhyve) install.
FIRMWARE_CODE = (
    "/usr/local/share/edk2-bhyve/BHYVE_UEFI_CODE.fd",
    "/usr/local/share/uefi-firmware/BHYVE_UEFI_CODE.fd",
    "/usr/local/share/uefi-firmware/BHYVE_UEFI.fd",
)
FIRMWARE_VARS = (
    "/usr/local/share/edk2-bhyve/BHYVE_UEFI_VARS.fd",
    "/usr/local/share/uefi-firmware/BHYVE_UEFI_VARS.fd",
)


def module_loaded(runner: Any, module: str) -> tuple[bool | None, str]:
    """kldstat(8) ``-q -m <module>``: exit 0 when the module is loaded or compiled into the
    kernel. Returns ``(loaded, problem)``; ``loaded`` is None when kldstat could not run."""
    result = probe(runner, ["kldstat", "-q", "-m", module])
    if result.returncode is None:
        return None, f"cannot run kldstat: {result.why()}"
    return result.ok, ""


def check_modules(runner: Any) -> list[CheckResult]:
    """One result per kernel module bHype needs."""
    results = []
    for module, purpose, optional in KERNEL_MODULES:
        loaded, problem = module_loaded(runner, module)
        name = f"kernel module {module}"
        if loaded:
            results.append(CheckResult(name, True, f"loaded ({purpose})", optional=optional))
        else:
            results.append(CheckResult(
                name, False, problem or f"not loaded; needed for {purpose}",
                fix=f"kldload {module} && sysrc kld_list+={module}", optional=optional,
            ))
    return results


def check_cpu(runner: Any) -> list[CheckResult]:
    """VT-x with unrestricted guest (Intel) or SVM (AMD), read with sysctl(8) ``-i`` (unknown
    OIDs are skipped silently, so the query also works while vmm is not loaded)."""
    result = probe(runner, ["sysctl", "-i", *VMM_SYSCTLS])
    if result.returncode is None:
        return [CheckResult("CPU virtualisation", False, f"cannot run sysctl: {result.why()}")]
    ok, detail = vmx_capability(parse_sysctl(result.stdout))
    fix = "" if ok else (
        "kldload vmm; enable VT-x/AMD-V in the firmware setup; UEFI guests on Intel need a CPU "
        "with unrestricted guest (Westmere or newer)"
    )
    return [CheckResult("CPU virtualisation", ok, detail, fix)]


def check_zfs(runner: Any) -> list[CheckResult]:
    """The ZFS module (modfind name ``zfs``, as libzfs uses) and its version from the
    ``vfs.zfs.version.module`` sysctl. Only queried, never loaded: ``zfs version`` would
    kldload the module as a side effect."""
    loaded, problem = module_loaded(runner, "zfs")
    if not loaded:
        return [CheckResult(
            "ZFS", False, problem or "the zfs kernel module is not loaded (VM disks fall back to files)",
            fix="sysrc zfs_enable=YES && service zfs start", optional=True,
        )]
    version = probe(runner, ["sysctl", "-i", "-n", "vfs.zfs.version.module"])
    found = parse_zfs_module_version(version.stdout) if version.ok else None
    detail = f"OpenZFS {found} ({version.stdout.strip()})" if found else "loaded (version unknown)"
    return [CheckResult("ZFS", True, detail, optional=True)]


def first_existing(runner: Any, paths: tuple[str, ...]) -> str | None:
    """The first of ``paths`` that is a regular file on the host (test(1) ``-f``)."""
    for path in paths:
        if probe(runner, ["test", "-f", path]).ok:
            return path
    return None


def check_firmware(runner: Any) -> list[CheckResult]:
    """The UEFI code image and the NVRAM variables template (bhyve ``-l bootrom,CODE,VARS``)."""
    code = first_existing(runner, FIRMWARE_CODE)
    variables = first_existing(runner, FIRMWARE_VARS)
    if code and variables:
        return [CheckResult("UEFI firmware", True, f"{code}, variables template {variables}")]
    wanted = (("UEFI code image", code), ("UEFI variables template", variables))
    missing = " and ".join(what for what, found in wanted if not found)
    where = "/usr/local/share/edk2-bhyve or /usr/local/share/uefi-firmware"
    return [CheckResult("UEFI firmware", False, f"no {missing} in {where}", fix="pkg install edk2-bhyve")]


RACCT_FIX = "sysrc -f /boot/loader.conf kern.racct.enable=1 (bhype host init does it), then reboot"


def check_racct(runner: Any) -> list[CheckResult]:
    """RACCT accounting, which monitoring's per-VM CPU time, memory and I/O read through rctl(8)
    ``-u``. GENERIC kernels have RACCT but keep it off until the loader tunable
    ``kern.racct.enable=1`` is set and the host rebooted (reference freebsd-host.md 4.4); a
    kernel built without it has no such OID, which sysctl(8) ``-i`` skips without a word."""
    result = probe(runner, ["sysctl", "-i", "-n", "kern.racct.enable"])
    if result.returncode is None:
        return [CheckResult("RACCT", False, f"cannot run sysctl: {result.why()}", optional=True)]
    value = result.stdout.strip()
    if value == "1":
        return [CheckResult("RACCT", True, "on (per-VM CPU time, memory and I/O through rctl -u)", optional=True)]
    if value == "0":
        return [CheckResult("RACCT", False, "present but off: per-VM CPU time, memory and I/O are not recorded",
                            fix=RACCT_FIX, optional=True)]
    return [CheckResult("RACCT", False, "this kernel has no RACCT (options RACCT, RCTL): per-VM accounting "
                        "is not available", fix="use a GENERIC kernel, or build one with options RACCT and RCTL",
                        optional=True)]


def freebsd_checks(runner: Any) -> list[CheckResult]:
    """Every FreeBSD host check, in the order a reader fixes them."""
    return [*check_modules(runner), *check_cpu(runner), *check_zfs(runner), *check_firmware(runner),
            *check_racct(runner)]
