"""The development host's own patch check: ``apt-get -s upgrade`` on Debian (opt-in,
``[hostops] check_platform = "debian"``). It is a real check of this host, never FreeBSD's: no
vulnerability database is read (Debian's debsecan is not part of the test host), so the
vulnerability checks say "skipped"."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bhype_core.plugin_api import CommandError
from bhype_hostops.audit_parse import CheckError
from bhype_hostops.checks import CheckReport, Finding, Outcome, raw

# apt-get(8) -s: "Inst bash [5.2.15-2+b8] (5.2.15-2+b13 Debian:12.15/oldstable [amd64])"; the
# [old] part is absent for a new install, origins are comma-separated.
_INST = re.compile(r"^Inst (\S+) (?:\[([^\]]+)\] )?\((\S+) ([^\[]*?)\s*\[[^\]]+\]\)")
_SUMMARY = re.compile(r"^\d+ upgraded, \d+ newly installed", re.MULTILINE)


@dataclass(frozen=True)
class AptUpgrade:
    """A package ``apt-get upgrade`` would install a new version of."""

    name: str
    old: str
    new: str
    origins: str

    @property
    def security(self) -> bool:
        """Whether the new version comes from Debian's security archive."""
        return "-Security" in self.origins or "security" in self.origins.lower()


def parse_apt_simulation(stdout: str) -> list[AptUpgrade]:
    """``apt-get -s upgrade`` → the upgrades it would make.

    :raises CheckError: no ``N upgraded, …`` summary (apt failed or said something else).
    """
    if not _SUMMARY.search(stdout):
        raise CheckError("apt-get -s upgrade: no 'N upgraded, M newly installed …' summary in its output")
    return [AptUpgrade(m.group(1), m.group(2) or "", m.group(3), m.group(4).strip())
            for line in stdout.splitlines() if (m := _INST.match(line))]


def debian_report(runner: Any, timeout: float, log: Callable[[str], None]) -> CheckReport:
    """Run the apt check; the FreeBSD checks are reported as skipped."""
    report = CheckReport([Outcome(name, "skipped", "not a FreeBSD host")
                          for name in ("base-mode", "pkg-audit", "base-audit", "freebsd-update", "pkgbase")])
    argv = ["apt-get", "-s", "-o", "Debug::NoLocking=1", "upgrade"]
    log("$ " + " ".join(argv))
    try:
        result = runner.run(argv, check=False, timeout=timeout)
        if result.returncode != 0:
            raise CheckError(f"apt-get -s upgrade failed (exit {result.returncode}): {result.stderr.strip()[-300:]}")
        upgrades = parse_apt_simulation(result.stdout)
    except (CheckError, CommandError) as exc:
        report.outcomes.append(Outcome("apt-upgrade", "error", str(exc)))
        return report
    if upgrades:
        rows = [{"name": u.name, "old": u.old, "new": u.new, "repository": u.origins, "vulnerable": u.security}
                for u in upgrades]
        security = sum(1 for u in upgrades if u.security)
        report.findings.append(Finding("patch:packages", "patch", "apt-upgrade", "packages", "",
                                       f"{len(rows)} Debian update(s), {security} from the security archive",
                                       {"upgrades": rows, "count": len(rows)}, raw(result)))
    report.outcomes.append(Outcome("apt-upgrade", "ok", f"{len(upgrades)} package update(s)",
                                   sources=("apt-upgrade",)))
    log(f"apt-upgrade: {len(upgrades)} package update(s)")
    return report
