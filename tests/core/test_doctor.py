"""``bhype doctor``: output parsers, FreeBSD checks against recorded samples, Linux checks for
real, and how the command collects, isolates and reports checks."""

from __future__ import annotations

import json
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from bhype_core.builtins import doctor as core_doctor
from bhype_core.builtins.doctor_freebsd import FIRMWARE_CODE, FIRMWARE_VARS, VMM_SYSCTLS, check_racct, freebsd_checks
from bhype_core.builtins.doctor_linux import QEMU, assess_kvm, check_kvm, check_tool, kvm_timeout
from bhype_core.builtins.doctor_parsers import (
    parse_qemu_version,
    parse_sysctl,
    parse_zfs_module_version,
    vmx_capability,
)
from bhype_core.builtins.doctor_probe import Probe
from bhype_core.commands.doctor import doctor, run_checks
from bhype_core.config import RunnerSettings
from bhype_core.errors import CommandError
from bhype_core.hookspecs import hookimpl
from bhype_core.host.runner import Result, make_runner
from bhype_core.registry import CheckResult, DoctorCheck
from bhype_core.runtime import build_runtime

SAMPLES = Path(__file__).parent / "samples"
ALL_MODULES = {"vmm", "nmdm", "if_tuntap", "if_bridge", "zfs"}
EDK2_FILES = {FIRMWARE_CODE[0], FIRMWARE_VARS[0]}


@dataclass(frozen=True)
class Sample:
    """A recorded command output: its argv and exit status from the header, then stdout."""

    argv: tuple[str, ...]
    returncode: int
    stdout: str


def load_sample(name: str) -> Sample:
    header: dict[str, str] = {}
    lines = (SAMPLES / name).read_text().splitlines(keepends=True)
    while lines and lines[0].startswith("#"):
        key, _, value = lines.pop(0)[1:].strip().partition(": ")
        if key in ("command", "exit"):
            header[key] = value
    return Sample(tuple(header["command"].split()), int(header["exit"]), "".join(lines))


@dataclass
class FreeBSDHost:
    """Test double of a FreeBSD host behind the runner (FreeBSD cannot run here).

    kldstat(8) ``-q -m M`` exits 0 when module M is loaded or compiled in, else 1, printing
    nothing; test(1) ``-f P`` exits 0 when P is a regular file, else 1; sysctl(8) answers come
    from the recorded samples. Any other command fails the test: doctor must only run these
    read-only queries (``zfs version`` would even kldload zfs).
    """

    modules: set[str] = field(default_factory=set)
    files: set[str] = field(default_factory=set)
    samples: list[str] = field(default_factory=list)
    ran: list[list[str]] = field(default_factory=list)

    def run(self, argv, *, timeout=None, check=True, **_):
        self.ran.append(list(argv))
        recorded = {s.argv: s for s in map(load_sample, self.samples)}
        if argv[:3] == ["kldstat", "-q", "-m"] and len(argv) == 4:
            code, out = (0 if argv[3] in self.modules else 1), ""
        elif argv[:2] == ["test", "-f"] and len(argv) == 3:
            code, out = (0 if argv[2] in self.files else 1), ""
        elif tuple(argv) in recorded:
            code, out = recorded[tuple(argv)].returncode, recorded[tuple(argv)].stdout
        else:
            raise AssertionError(f"doctor ran a command the FreeBSD double does not know: {argv}")
        result = Result(list(argv), code, out, "", out.encode(), b"", 0.01)
        return result.assert_success() if check else result


def by_name(results: list[CheckResult]) -> dict[str, CheckResult]:
    return {result.name: result for result in results}


# Parsers ------------------------------------------------------------------------------------


def test_samples_are_the_commands_doctor_runs():
    assert load_sample("sysctl-vmm-intel.txt").argv == ("sysctl", "-i", *VMM_SYSCTLS)
    assert load_sample("sysctl-zfs-version.txt").argv == ("sysctl", "-i", "-n", "vfs.zfs.version.module")


def test_parse_sysctl():
    values = parse_sysctl(load_sample("sysctl-vmm-amd.txt").stdout)
    assert values == {
        "hw.model": "AMD Ryzen 7 5800X 8-Core Processor",
        "hw.vmm.vmx.initialized": "0",
        "hw.vmm.vmx.cap.unrestricted_guest": "0",
        "hw.vmm.svm.features": "113919",
        "hw.vmm.svm.num_asids": "32768",
    }
    # Only the first ": " separates; continuation lines without one are skipped.
    assert parse_sysctl("kern.foo: a: b\n  more text\n") == {"kern.foo": "a: b"}


@pytest.mark.parametrize(
    ("sample", "ok", "words"),
    [
        ("sysctl-vmm-intel.txt", True, "Intel VT-x with unrestricted guest (Intel(R) Xeon(R)"),
        ("sysctl-vmm-intel-no-unrestricted-guest.txt", False, "without unrestricted guest"),
        ("sysctl-vmm-amd.txt", True, "AMD-V with 32768 ASIDs"),
        ("sysctl-vmm-not-loaded.txt", False, "vmm module is not loaded"),
    ],
)
def test_vmx_capability_from_samples(sample, ok, words):
    result_ok, detail = vmx_capability(parse_sysctl(load_sample(sample).stdout))
    assert result_ok is ok and words in detail


def test_vmx_capability_neither_vendor_initialised():
    ok, detail = vmx_capability({"hw.vmm.vmx.initialized": "0", "hw.vmm.svm.num_asids": "0",
                                 "hw.vmm.svm.features": "4294967295"})
    assert not ok and "firmware" in detail


def test_parse_zfs_module_version():
    assert parse_zfs_module_version(load_sample("sysctl-zfs-version.txt").stdout) == "2.2.6"
    assert parse_zfs_module_version(load_sample("sysctl-zfs-version-absent.txt").stdout) is None


def test_parse_qemu_version_of_the_installed_qemu():
    system = subprocess.run([QEMU, "--version"], capture_output=True, text=True, check=True).stdout
    image = subprocess.run(["qemu-img", "--version"], capture_output=True, text=True, check=True).stdout
    version = parse_qemu_version(system)
    assert version and f"version {version}" in system.splitlines()[0]
    assert parse_qemu_version(image) == version  # one QEMU build
    assert parse_qemu_version("QEMU emulator version 8.2.2 (Debian 1:8.2.2+ds-0ubuntu1.4)\n") == "8.2.2"
    assert parse_qemu_version("") is None and parse_qemu_version("no version here") is None


# FreeBSD checks against the double ------------------------------------------------------------


def test_freebsd_healthy_intel_host():
    host = FreeBSDHost(ALL_MODULES, EDK2_FILES,
                       ["sysctl-vmm-intel.txt", "sysctl-zfs-version.txt", "sysctl-racct-on.txt"])
    results = by_name(freebsd_checks(host))
    assert all(result.ok for result in results.values()), results
    assert results["ZFS"].detail == "OpenZFS 2.2.6 (2.2.6-FreeBSD_g33174af15)"
    assert results["UEFI firmware"].detail.startswith("/usr/local/share/edk2-bhyve/BHYVE_UEFI_CODE.fd")
    assert {argv[0] for argv in host.ran} == {"kldstat", "sysctl", "test"}


def test_freebsd_bare_host_says_what_to_fix():
    host = FreeBSDHost(set(), set(), ["sysctl-vmm-not-loaded.txt", "sysctl-racct-off.txt"])
    results = by_name(freebsd_checks(host))
    for module in ("vmm", "nmdm", "if_tuntap"):
        result = results[f"kernel module {module}"]
        assert not result.ok and not result.optional
        assert result.fix == f"kldload {module} && sysrc kld_list+={module}"
    bridge = results["kernel module if_bridge"]
    assert not bridge.ok and bridge.optional  # ifconfig bridge create loads it on demand
    assert not results["CPU virtualisation"].ok and "kldload vmm" in results["CPU virtualisation"].fix
    assert not results["ZFS"].ok and results["ZFS"].optional
    firmware = results["UEFI firmware"]
    assert not firmware.ok and firmware.fix == "pkg install edk2-bhyve"
    assert "UEFI code image and UEFI variables template" in firmware.detail
    # Without the module loaded, the ZFS version is not even asked for.
    assert ["sysctl", "-i", "-n", "vfs.zfs.version.module"] not in host.ran


def test_freebsd_older_firmware_layout_and_amd():
    code = "/usr/local/share/uefi-firmware/BHYVE_UEFI.fd"
    variables = "/usr/local/share/uefi-firmware/BHYVE_UEFI_VARS.fd"
    host = FreeBSDHost(ALL_MODULES, {code, variables},
                       ["sysctl-vmm-amd.txt", "sysctl-zfs-version.txt", "sysctl-racct-on.txt"])
    results = by_name(freebsd_checks(host))
    assert results["UEFI firmware"].ok
    assert results["UEFI firmware"].detail == f"{code}, variables template {variables}"
    assert results["CPU virtualisation"].ok and "AMD-V" in results["CPU virtualisation"].detail


def test_freebsd_code_without_vars_template_fails():
    host = FreeBSDHost(ALL_MODULES, {FIRMWARE_CODE[0]},
                       ["sysctl-vmm-intel-no-unrestricted-guest.txt", "sysctl-zfs-version.txt",
                        "sysctl-racct-on.txt"])
    results = by_name(freebsd_checks(host))
    assert not results["UEFI firmware"].ok and "no UEFI variables template" in results["UEFI firmware"].detail
    assert not results["CPU virtualisation"].ok and "Westmere" in results["CPU virtualisation"].fix


@pytest.mark.parametrize(("sample", "ok", "words"), [
    ("sysctl-racct-on.txt", True, "on (per-VM CPU time"),
    ("sysctl-racct-off.txt", False, "present but off"),
    ("sysctl-racct-absent.txt", False, "has no RACCT"),
])
def test_racct_state_is_reported_for_monitoring(sample, ok, words):
    # Monitoring reads per-VM CPU time, memory and I/O with rctl -u only when RACCT is on.
    [result] = check_racct(FreeBSDHost(samples=[sample]))
    assert (result.ok, result.optional) == (ok, True) and words in result.detail
    assert ("kern.racct.enable=1" in result.fix) == (sample == "sysctl-racct-off.txt")


def test_freebsd_checks_over_a_runner_that_cannot_start_commands():
    # The real runner on this Linux machine: kldstat does not exist here.
    results = by_name(freebsd_checks(make_runner(RunnerSettings())))
    assert results["kernel module vmm"].detail == "cannot run kldstat: command not found: kldstat"
    assert not any(result.ok for result in results.values())


# Linux checks, for real --------------------------------------------------------------------


def test_qemu_tools_found_with_their_versions():
    runner = make_runner(RunnerSettings())
    result, version = check_tool(runner, QEMU, "qemu-system-x86", "QEMU")
    assert result.ok and version and result.detail == f"{QEMU} {version}"
    missing, none = check_tool(runner, "qemu-system-bhype-missing", "qemu-system-x86", "QEMU")
    assert not missing.ok and none is None
    assert "command not found" in missing.detail and missing.fix == "apt-get install qemu-system-x86"


def test_kvm_check_without_qemu_reports_it():
    result = check_kvm(make_runner(RunnerSettings()), qemu="qemu-system-bhype-missing")
    assert not result.ok and result.optional
    assert "cannot run qemu-system-bhype-missing: command not found" in result.detail and result.fix


def kvm_probe(returncode, duration=0.2, error="", stderr=""):
    return Probe(("qemu-system-x86_64", "-accel", "kvm"), returncode, "", stderr, duration, error)


@pytest.mark.parametrize(
    ("kvm", "tcg", "usable", "words"),
    [
        (kvm_probe(0, 0.15), kvm_probe(0, 0.2), True, "usable"),
        (kvm_probe(0, 6.5), kvm_probe(0, 0.3), False, "slower than software emulation"),
        (kvm_probe(None, 3.0, "timed out after 3s"), kvm_probe(0, 0.3), False, "nested KVM hanging"),
        (kvm_probe(1, stderr="qemu-system-x86_64: -accel kvm: Could not access KVM kernel module: "
                             "Permission denied\n"), kvm_probe(0), False, "Permission denied"),
    ],
)
def test_assess_kvm(kvm, tcg, usable, words):
    ok, detail = assess_kvm(kvm, tcg)
    assert ok is usable and words in detail


def test_kvm_timeout_follows_the_tcg_baseline():
    assert kvm_timeout(kvm_probe(0, 0.2)) == 3.0
    assert kvm_timeout(kvm_probe(0, 2.0)) == 8.0
    assert kvm_timeout(kvm_probe(None, error="command not found")) == 10.0


def test_data_dir_check(tmp_path):
    assert core_doctor.check_data_dir(tmp_path).ok
    future = core_doctor.check_data_dir(tmp_path / "a" / "b")
    assert future.ok and "will be created" in future.detail
    (tmp_path / "file").write_text("x")
    not_dir = core_doctor.check_data_dir(tmp_path / "file")
    assert not not_dir.ok and "not a directory" in not_dir.detail and not_dir.fix


# The command: collecting, isolating, reporting ---------------------------------------------


class FakeChecks:
    @hookimpl
    def bhype_register_doctor_checks(self, register):
        def never(settings):
            raise AssertionError("a check for another platform ran")

        def broken(settings):
            raise RuntimeError("probe exploded")

        register(DoctorCheck("here", lambda settings: [
            CheckResult("thing", True, f"data in {settings.core.data_dir}"),
            CheckResult("nice-to-have", False, "absent", "install it", optional=True),
        ], platforms=("linux", "freebsd")))
        register(DoctorCheck("elsewhere", never, platforms=("solaris",)))
        register(DoctorCheck("broken", broken))


def test_run_checks_by_platform_and_isolated(register_plugin, bhype_settings, plugin_manager):
    register_plugin(FakeChecks(), "fakechecks")
    runtime = build_runtime(bhype_settings, plugin_manager)
    findings = run_checks(runtime, "linux")
    assert [(f.check, f.result.name) for f in findings] == [
        ("here", "thing"), ("here", "nice-to-have"), ("broken", "broken")
    ]
    broken = findings[-1]
    assert broken.plugin == "fakechecks" and broken.failed
    assert "RuntimeError: probe exploded" in broken.result.detail and "fakechecks" in broken.result.fix
    assert not findings[1].failed  # optional


def test_doctor_report_and_exit_status(register_plugin, bhype_settings, plugin_manager):
    register_plugin(FakeChecks(), "fakechecks")
    text, status = doctor(build_runtime(bhype_settings, plugin_manager), as_json=True)
    report = json.loads(text)
    assert status == 1 and report["ok"] is False  # the broken check is required
    assert [c["name"] for c in report["checks"]] == ["thing", "nice-to-have", "broken"]
    table, _ = doctor(build_runtime(bhype_settings, plugin_manager))
    assert "warn  nice-to-have" in table and "fix: install it" in table and "3 check(s), 1 failed" in table


def test_doctor_passes_when_only_optional_checks_fail(register_plugin, bhype_settings, plugin_manager):
    class OnlyOptional:
        @hookimpl
        def bhype_register_doctor_checks(self, register):
            result = CheckResult("kvm", False, "slow", "x", optional=True)
            register(DoctorCheck("kvm", lambda settings: [result]))

    register_plugin(OnlyOptional(), "only_optional")
    _, status = doctor(build_runtime(bhype_settings, plugin_manager))
    assert status == 0


def test_doctor_runner_ignores_dry_run(bhype_settings):
    # Doctor only queries; a dry run would report nothing real.
    settings = bhype_settings
    settings.runner = settings.runner.model_copy(update={"dry_run": True})
    runner = core_doctor.doctor_runner(settings)
    assert runner.run(["true"]).returncode == 0 and not runner.run(["true"]).dry_run


def test_command_error_probe_keeps_the_reason():
    class Failing:
        def run(self, argv, **_):
            raise CommandError(argv, None, "partial", 3.0, reason="timed out after 3s")

    from bhype_core.builtins.doctor_probe import probe

    result = probe(Failing(), ["sleep", "9"])
    assert result.returncode is None and result.error == "timed out after 3s" and result.why() == result.error
