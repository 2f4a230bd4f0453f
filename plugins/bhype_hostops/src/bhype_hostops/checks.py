"""The vulnerability and patch checks: which commands run, and the findings they give.

On a FreeBSD host (``[hostops] check_platform``): pkgbase detection (``pkg which
/usr/bin/uname``, as freebsd-update.sh ``check_pkgbase`` does), ``pkg audit -F -Rjson``, the
base system's audit by its pseudo-package, freebsd-update fetch + updatesready (classic base)
or the FreeBSD-base repository (pkgbase), and ``pkg upgrade -n``. Elsewhere nothing runs and
every check says "skipped": a Linux host is never reported as checked.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from bhype_core.plugin_api import CommandError, detect_platform
from bhype_hostops.audit_parse import CheckError, Vulnerable, base_package, parse_pkg_audit
from bhype_hostops.settings import HostopsSettings
from bhype_hostops.update_parse import parse_fetch, parse_pkg_upgrade_dry_run, parse_updatesready

Log = Callable[[str], None]
PKGBASE_REPOSITORY = "FreeBSD-base"  # usr.sbin/pkg/FreeBSD.conf.quarterly-release
MAX_RAW = 200_000  # characters of a command's output kept with a finding


@dataclass
class Finding:
    """A vulnerability or pending patch as one check run saw it."""

    key: str
    kind: str  # vulnerability | patch
    source: str
    package: str
    version: str
    title: str
    data: dict[str, Any]
    raw_output: str = ""

    @property
    def digest(self) -> str:
        """Changes when what the admin should hear changes (a new issue, another version)."""
        body = json.dumps([self.kind, self.package, self.version, self.data], sort_keys=True, default=str)
        return hashlib.sha256(body.encode()).hexdigest()


@dataclass
class Outcome:
    """How one check went: ``ok``, ``error`` or ``skipped``, and what it said."""

    name: str
    status: str
    message: str = ""
    raw_output: str = ""
    sources: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "status": self.status, "message": self.message,
                "raw_output": self.raw_output[:MAX_RAW]}


@dataclass
class CheckReport:
    """Every check's outcome and every finding of one run."""

    outcomes: list[Outcome] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def checked_sources(self) -> set[str]:
        """The finding sources whose check answered (only their old findings may be resolved)."""
        return {source for outcome in self.outcomes if outcome.status == "ok" for source in outcome.sources}


def raw(result: Any) -> str:
    """A command and its output as stored with a finding."""
    text = f"$ {' '.join(result.argv)}\n(exit {result.returncode})\n{result.stdout}"
    if result.stderr:
        text += f"\n[stderr]\n{result.stderr}"
    return text[:MAX_RAW]


class Checks:
    """Runs the checks through ``runner`` with the tools named in the settings."""

    def __init__(self, runner: Any, settings: HostopsSettings, log: Log) -> None:
        self.runner = runner
        self.settings = settings
        self.log = log

    def run(self, argv: list[str], env: dict[str, str] | None = None) -> Any:
        self.log("$ " + " ".join(argv))
        result = self.runner.run(argv, check=False, timeout=self.settings.check_timeout, env=env)
        self.log(f"  exit {result.returncode}, {len(result.stdout.splitlines())} line(s)")
        return result

    def pkg(self, *args: str) -> list[str]:
        return [self.settings.pkg_command, *args]

    def all(self) -> CheckReport:
        """Run every check; one failing check never stops the others."""
        report = CheckReport()
        try:
            # freebsd-update.sh check_pkgbase: base is packaged when /usr/bin/uname belongs to a package.
            pkgbase = self.run(self.pkg("which", "/usr/bin/uname")).returncode == 0
        except CommandError as exc:
            report.outcomes.append(Outcome("base-mode", "error", f"pkg could not run: {exc}"))
            return report
        report.outcomes.append(Outcome("base-mode", "ok", "packaged base (pkgbase)" if pkgbase else "classic base"))
        steps: list[tuple[str, tuple[str, ...], Callable[[CheckReport], str]]] = [
            ("pkg-audit", ("pkg-audit",), self.pkg_audit)]
        if pkgbase:
            steps += [("base-audit", (), lambda r: "pkgbase: base packages are audited by pkg audit"),
                      ("freebsd-update", (), lambda r: "pkgbase: freebsd-update refuses there"),
                      ("pkgbase", ("pkgbase",), self.pkgbase_updates)]
        else:
            steps += [("base-audit", ("base-audit",), self.base_audit),
                      ("freebsd-update", ("freebsd-update",), self.freebsd_update)]
        steps.append(("pkg-upgrade", ("pkg-upgrade",), lambda r: self.pkg_upgrade(r, pkgbase)))
        for name, sources, step in steps:
            if not sources:
                report.outcomes.append(Outcome(name, "skipped", step(report)))
                continue
            try:
                message = step(report)
            except CheckError as exc:
                report.outcomes.append(Outcome(name, "error", str(exc), getattr(exc, "raw", "")))
                self.log(f"{name}: {exc}")
            except CommandError as exc:
                report.outcomes.append(Outcome(name, "error", str(exc)))
                self.log(f"{name}: {exc}")
            else:
                report.outcomes.append(Outcome(name, "ok", message, sources=sources))
                self.log(f"{name}: {message}")
        return report

    def _audit(self, argv: list[str]) -> tuple[list[Vulnerable], str]:
        result = self.run(argv)
        try:
            return parse_pkg_audit(result.returncode, result.stdout, result.stderr), raw(result)
        except CheckError as exc:
            exc.raw = raw(result)  # type: ignore[attr-defined]
            raise

    def _vulnerability_findings(self, found: list[Vulnerable], source: str, output: str) -> list[Finding]:
        findings = []
        for item in found:
            issues = [{"description": i.description, "cves": list(i.cves), "url": i.url, "vid": i.vid,
                       "affected": list(i.affected)} for i in item.issues]
            title = "; ".join(issue.description for issue in item.issues) or "vulnerable"
            findings.append(Finding(f"vuln:{item.package}", "vulnerability", source, item.package, item.version,
                                    title[:1024], {"cves": item.cves, "issues": issues,
                                                   "urls": [i.url for i in item.issues],
                                                   "reverse_dependencies": list(item.reverse_dependencies)},
                                    output))
        return findings

    def pkg_audit(self, report: CheckReport) -> str:
        # pkg-audit(8): -F fetches vuln.xml first; -Rjson with the format attached to the flag.
        found, output = self._audit(self.pkg("audit", "-F", "-Rjson"))
        report.findings += self._vulnerability_findings(found, "pkg-audit", output)
        return f"{len(found)} vulnerable package(s)"

    def base_audit(self, report: CheckReport) -> str:
        found_all: list[Finding] = []
        for flag, kernel in (("-u", False), ("-k", True)):
            # freebsd-version(1): -u installed userland, -k installed kernel.
            version = self.run([self.settings.freebsd_version_command, flag])
            if version.returncode != 0:
                raise CheckError(f"freebsd-version {flag} failed: {version.stderr.strip()}")
            name = base_package(version.stdout, kernel=kernel)
            found, output = self._audit(self.pkg("audit", "-Rjson", name))
            found_all += self._vulnerability_findings(found, "base-audit", output)
        report.findings += found_all
        return f"{len(found_all)} vulnerable base component(s)"

    def freebsd_update(self, report: CheckReport) -> str:
        # freebsd-update(8): "fetch" refuses without a tty unless --not-running-from-cron; it
        # pages file lists through $PAGER, so PAGER=cat. Then "updatesready" says what waits.
        fetched = self.run([self.settings.freebsd_update_command, "--not-running-from-cron", "fetch"],
                           env={"PAGER": "cat"})
        try:
            update = parse_fetch(fetched.returncode, fetched.stdout, fetched.stderr)
            ready = self.run([self.settings.freebsd_update_command, "updatesready"])
            pending = parse_updatesready(ready.returncode, ready.stdout, ready.stderr)
        except CheckError as exc:
            exc.raw = raw(fetched)  # type: ignore[attr-defined]
            raise
        if not pending:
            return "no base system updates"
        target = update.target if update else ""
        files = list(update.files) if update else []
        report.findings.append(Finding("patch:base", "patch", "freebsd-update", "FreeBSD", target,
                                       f"FreeBSD base system update{' to ' + target if target else ''} "
                                       f"({len(files)} file(s))", {"target": target, "files": files[:500],
                                                                   "file_count": len(files)},
                                       raw(fetched) + "\n" + raw(ready)))
        return f"base system update to {target or 'a new patch level'} ready to install"

    def _upgrades(self, argv: list[str]) -> tuple[list[Any], str]:
        result = self.run(argv)
        if result.returncode not in (0, 1):  # 1: pkg < 2.4 with upgrades pending (pkg-upgrade(8))
            raise CheckError(f"{' '.join(argv)} failed (exit {result.returncode}): {result.stderr.strip()}")
        try:
            return parse_pkg_upgrade_dry_run(result.stdout), raw(result)
        except CheckError as exc:
            exc.raw = raw(result)  # type: ignore[attr-defined]
            raise

    def pkgbase_updates(self, report: CheckReport) -> str:
        upgrades, output = self._upgrades(self.pkg("upgrade", "-n", "-r", PKGBASE_REPOSITORY))
        if upgrades:
            report.findings.append(self._patch_finding("patch:base", "pkgbase", "FreeBSD-base", upgrades, output))
        return f"{len(upgrades)} base package update(s)"

    def pkg_upgrade(self, report: CheckReport, pkgbase: bool) -> str:
        upgrades, output = self._upgrades(self.pkg("upgrade", "-n"))
        if pkgbase:  # the base packages are the pkgbase finding's
            upgrades = [u for u in upgrades if u.repository != PKGBASE_REPOSITORY]
        if upgrades:
            report.findings.append(self._patch_finding("patch:packages", "pkg-upgrade", "packages", upgrades, output))
        return f"{len(upgrades)} package update(s)"

    @staticmethod
    def _patch_finding(key: str, source: str, package: str, upgrades: list[Any], output: str) -> Finding:
        rows = [{"name": u.name, "old": u.old, "new": u.new, "repository": u.repository, "vulnerable": u.vulnerable}
                for u in upgrades]
        names = ", ".join(f"{u.name} {u.new}" for u in upgrades[:5]) + (" …" if len(upgrades) > 5 else "")
        return Finding(key, "patch", source, package, "", f"{len(upgrades)} update(s): {names}",
                       {"upgrades": rows, "count": len(rows)}, output)


def checks_apply(settings: HostopsSettings, core_platform: str) -> bool:
    """Whether this host gets the FreeBSD checks (``[hostops] check_platform``)."""
    if settings.check_platform in ("none", "debian"):
        return False
    return settings.check_platform == "freebsd" or detect_platform(core_platform) == "freebsd"
