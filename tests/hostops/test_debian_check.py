"""The development host's own, real patch check (opt-in): ``apt-get -s upgrade`` on this Debian."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bhype_hostops.audit_parse import CheckError
from bhype_hostops.debian_checks import parse_apt_simulation
from bhype_hostops.findings_store import list_findings

from .tasks import run_task

SAMPLES = Path(__file__).parent / "samples" / "debian"


def test_the_apt_simulation_parser():
    upgrades = parse_apt_simulation((SAMPLES / "apt_get_s_upgrade.txt").read_text())
    assert [(u.name, u.old, u.new, u.security) for u in upgrades] == [
        ("base-files", "12.4+deb12u11", "12.4+deb12u15", False), ("bash", "5.2.15-2+b8", "5.2.15-2+b13", False),
        ("libgcrypt20-dev", "1.10.1-3", "1.10.1-3+deb12u1", True)]
    assert parse_apt_simulation((SAMPLES / "apt_get_s_upgrade_none.txt").read_text()) == []
    with pytest.raises(CheckError):
        parse_apt_simulation("E: Could not open lock file /var/lib/dpkg/lock-frontend\n")


def test_a_real_check_of_this_debian_host(hostops_runtime):
    runtime = hostops_runtime(check_platform="debian")
    task = run_task(runtime, "hostops.check", {})
    assert task.state == "succeeded", task.error
    assert task.result["checks"]["apt-upgrade"] == "ok"
    assert task.result["checks"]["pkg-audit"] == "skipped"  # no FreeBSD check is pretended
    # The same simulation run here independently names the same packages.
    own = subprocess.run(["apt-get", "-s", "-o", "Debug::NoLocking=1", "upgrade"], capture_output=True, text=True,
                         check=True).stdout
    expected = sorted(line.split()[1] for line in own.splitlines() if line.startswith("Inst "))
    found = [f for f in list_findings(runtime) if f["key"] == "patch:packages"]
    names = sorted(u["name"] for f in found for u in f["data"]["upgrades"])
    assert names == expected
