"""Linux host checks for ``bhype doctor``: QEMU, qemu-img and whether KVM really works."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from bhype_core.builtins.doctor_parsers import parse_qemu_version
from bhype_core.builtins.doctor_probe import Probe, probe
from bhype_core.registry import CheckResult

QEMU = "qemu-system-x86_64"
QEMU_IMG = "qemu-img"

# A guest that exits on its own: SeaBIOS finds no boot device and reboots at once
# (reboot-timeout=0), and -no-reboot turns that reboot into QEMU exiting with status 0.
PROBE_TIMEOUT = 10.0
# Real KVM runs the probe guest faster than TCG; broken nested KVM (every VM exit emulated)
# runs it many times slower or never finishes. Generous factor and slack: a busy machine
# slows both probes alike, and a false "unusable" only costs speed (QEMU falls back to TCG).
KVM_SLOWER_FACTOR = 3.0
KVM_SLACK = 1.0  # seconds
KVM_MIN_TIMEOUT = 3.0  # seconds; the KVM probe is stopped once it is clearly too slow

KVM_FIX = (
    "QEMU falls back to TCG (slow but working). For KVM: load kvm_intel or kvm_amd, let the bHype "
    "user open /dev/kvm (group kvm), and on a VM enable nested virtualisation in the outer hypervisor"
)


def probe_argv(qemu: str, accel: str) -> list[str]:
    """QEMU command line of the probe guest under ``accel`` (``kvm`` or ``tcg``)."""
    return [qemu, "-accel", accel, "-machine", "pc", "-m", "32", "-nodefaults", "-display", "none",
            "-no-reboot", "-boot", "reboot-timeout=0"]


def assess_kvm(kvm: Probe, tcg: Probe | None) -> tuple[bool, str]:
    """Judge the KVM probe (and the TCG probe run for comparison): ``(usable, detail)``.

    Presence of /dev/kvm proves nothing: under broken nested virtualisation QEMU opens it and
    then spins forever, so only a guest that runs to completion, faster than software
    emulation, counts.
    """
    if kvm.returncode is None:
        if "timed out" in kvm.error:
            baseline = f", TCG ran it in {tcg.duration:.2f}s" if tcg is not None and tcg.ok else ""
            return False, f"the KVM probe guest did not finish ({kvm.error}{baseline}): nested KVM hanging?"
        return False, f"cannot run {kvm.argv[0]}: {kvm.why()}"
    if not kvm.ok:
        return False, f"QEMU cannot use KVM: {kvm.why()}"
    if tcg is not None and tcg.ok and kvm.duration > KVM_SLOWER_FACTOR * tcg.duration + KVM_SLACK:
        return False, (
            f"KVM runs but slower than software emulation (probe {kvm.duration:.2f}s, TCG "
            f"{tcg.duration:.2f}s): nested virtualisation without hardware support"
        )
    return True, f"usable (probe guest ran in {kvm.duration:.2f}s)"


def check_tool(runner: Any, program: str, package: str, name: str) -> tuple[CheckResult, str | None]:
    """``<program> --version``: found and its version, with the Debian package as the fix."""
    result = probe(runner, [program, "--version"])
    version = parse_qemu_version(result.stdout) if result.ok else None
    if version:
        return CheckResult(name, True, f"{program} {version}"), version
    problem = result.why() if not result.ok else f"unrecognised output: {result.stdout.strip()[:80]!r}"
    return CheckResult(name, False, f"{program}: {problem}", fix=f"apt-get install {package}"), None


def kvm_timeout(tcg: Probe) -> float:
    """How long the KVM probe may run: a little past the point where :func:`assess_kvm` calls
    it too slow, so a hanging KVM costs seconds, not the whole ``PROBE_TIMEOUT``."""
    if not tcg.ok:
        return PROBE_TIMEOUT
    return min(PROBE_TIMEOUT, max(KVM_MIN_TIMEOUT, KVM_SLOWER_FACTOR * tcg.duration + KVM_SLACK + 1.0))


def check_kvm(runner: Any, qemu: str = QEMU) -> CheckResult:
    """Boot the probe guest with TCG (the baseline), then with KVM, and judge the result."""
    tcg = probe(runner, probe_argv(qemu, "tcg"), timeout=PROBE_TIMEOUT)
    kvm = probe(runner, probe_argv(qemu, "kvm"), timeout=kvm_timeout(tcg))
    usable, detail = assess_kvm(kvm, tcg)
    return CheckResult("KVM acceleration", usable, detail, "" if usable else KVM_FIX, optional=True)


def check_ovmf(candidates: Sequence[tuple[str, str]] | None = None) -> CheckResult:
    """UEFI firmware for QEMU: an OVMF code image and its variable store template (every
    template but one boots UEFI, so without it almost every first VM fails to create).

    :param candidates: (code, vars) pairs to look for; default: where QEMU's driver looks.
    """
    from bhype_core.drivers.qemu_argv import OVMF_CANDIDATES, find_ovmf

    candidates = OVMF_CANDIDATES if candidates is None else candidates
    found = find_ovmf(candidates)
    if found:
        return CheckResult("UEFI firmware", True, f"{found[0]} with {found[1]}")
    wanted = " or ".join(f"{code} + {vars_}" for code, vars_ in candidates)
    return CheckResult("UEFI firmware", False, f"OVMF not found ({wanted}): VMs with boot mode uefi cannot be "
                       "created", "apt-get install ovmf")


def linux_checks(runner: Any) -> list[CheckResult]:
    """QEMU system emulator, qemu-img, UEFI firmware, and KVM (only probed when QEMU is there)."""
    qemu, version = check_tool(runner, QEMU, "qemu-system-x86", "QEMU")
    image, _ = check_tool(runner, QEMU_IMG, "qemu-utils", "qemu-img")
    results = [qemu, image, check_ovmf()]
    if version:
        results.append(check_kvm(runner))
    return results
