"""``bhype doctor``: run every registered read-only check for this platform and report."""

from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass
from typing import Any

from bhype_core.commands.plugins import format_table
from bhype_core.registry import CheckResult
from bhype_core.runtime import Runtime

log = logging.getLogger("bhype.doctor")


@dataclass(frozen=True)
class Finding:
    """One check result together with the check and plugin that produced it."""

    check: str
    plugin: str
    result: CheckResult

    @property
    def failed(self) -> bool:
        """A required check that did not pass (a failed optional one is only shown)."""
        return not self.result.ok and not self.result.optional

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "plugin": self.plugin, **asdict(self.result)}


def current_platform(runtime: Runtime) -> str:
    """``core.platform``, or the detected platform when it is ``auto``."""
    from bhype_core.host.platform import detect_platform

    return detect_platform(runtime.settings.core.platform)


def run_checks(runtime: Runtime, platform: str) -> list[Finding]:
    """Run each registered :class:`~bhype_core.registry.DoctorCheck` made for ``platform``.

    A check that raises instead of returning results becomes one failed finding naming the
    check and the error: one broken check must not hide the others.
    """
    findings: list[Finding] = []
    catalog = runtime.registry.doctor_checks
    for name in catalog.names():
        check = catalog[name]
        if platform not in check.platforms:
            continue
        plugin = catalog.plugin_of(name)
        try:
            results = list(check.run(runtime.settings))
        except Exception as exc:  # reported as a failed check, see docstring
            log.debug("doctor check %s failed", name, exc_info=True)
            results = [CheckResult(name, False, f"the check itself failed: {type(exc).__name__}: {exc}",
                                   f"report this to the author of plugin {plugin}")]
        findings += [Finding(name, plugin, result) for result in results]
    return findings


def report(platform: str, findings: list[Finding], as_json: bool = False) -> str:
    """The text ``bhype doctor [--json]`` prints."""
    if as_json:
        return json.dumps(
            {
                "platform": platform,
                "ok": not any(finding.failed for finding in findings),
                "checks": [finding.to_dict() for finding in findings],
            },
            indent=2,
        )
    rows = []
    for finding in findings:
        result = finding.result
        state = "ok" if result.ok else ("warn" if result.optional else "FAIL")
        rows.append([state, result.name, result.detail])
        if not result.ok and result.fix:
            rows.append(["", "", f"fix: {result.fix}"])
    failed = sum(finding.failed for finding in findings)
    summary = f"{platform}: {len(findings)} check(s), {failed} failed"
    table = format_table(rows, ["", "check", "detail"]) if rows else "no checks registered"
    return f"{table}\n{summary}"


def doctor(runtime: Runtime, as_json: bool = False) -> tuple[str, int]:
    """Run the checks; returns the report and the exit status (1 when a required check failed)."""
    platform = current_platform(runtime)
    findings = run_checks(runtime, platform)
    status = 1 if any(finding.failed for finding in findings) else 0
    return report(platform, findings, as_json), status
