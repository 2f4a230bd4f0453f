"""The ``hostops.check`` task (daily and on demand): run the checks, store the findings, and
announce the new or changed ones through ``bhype_notify`` (web UI popups, SNMP, mail)."""

from __future__ import annotations

from typing import Any

from bhype_core.plugin_api import Event, EventKind, TaskContext
from bhype_hostops.checks import CheckReport, Checks, Outcome, checks_apply
from bhype_hostops.findings_store import record_run
from bhype_hostops.settings import HostopsSettings

CHECK_KIND = "hostops.check"
VULNERABILITY = "hostops.vulnerability"
PATCHES = "hostops.patches"
NAMES = ("base-mode", "pkg-audit", "base-audit", "freebsd-update", "pkgbase", "pkg-upgrade")

EVENT_KINDS = (
    EventKind(VULNERABILITY, "error", "A host package (or the base system) has a known vulnerability (pkg audit).",
              {"package": "the package name (FreeBSD / FreeBSD-kernel for the base system)",
               "version": "the installed version", "cves": "CVE ids", "description": "the VuXML topic(s)",
               "url": "the VuXML link", "finding_id": "the finding on the Host → Updates page",
               "task_id": "the check that found it"}),
    EventKind(PATCHES, "warning", "Updates for the host are available (base system or packages).",
              {"package": "FreeBSD (base), FreeBSD-base (pkgbase) or packages",
               "version": "the version the base system updates to", "count": "packages to upgrade",
               "description": "what would be updated", "finding_id": "the finding on the Host → Updates page",
               "task_id": "the check that found it"}),
)


def _event(finding: dict[str, Any], task_id: str) -> Event:
    data = finding["data"]
    if finding["kind"] == "vulnerability":
        cves = data.get("cves", [])
        urls = data.get("urls", [])
        message = (f"{finding['package']} {finding['version']} is vulnerable: {finding['title']}"
                   + (f" ({', '.join(cves[:5])}{' …' if len(cves) > 5 else ''})" if cves else ""))
        return Event(VULNERABILITY, message, severity="error", subject=f"package:{finding['package']}",
                     data={"package": finding["package"], "version": finding["version"], "cves": cves,
                           "description": finding["title"], "url": urls[0] if urls else "", "urls": urls,
                           "finding_id": finding["id"], "task_id": task_id})
    return Event(PATCHES, f"Host updates available: {finding['title']}", severity="warning",
                 subject=f"patch:{finding['package']}",
                 data={"package": finding["package"], "version": finding["version"],
                       "count": data.get("count", data.get("file_count", 0)), "description": finding["title"],
                       "finding_id": finding["id"], "task_id": task_id})


def pending_patches(report: CheckReport) -> dict[str, list[dict[str, Any]]] | None:
    """``{"base": [...], "packages": [...]}`` for the update workflow's plan, or None when a
    patch check did not answer (the workflow then says the updates are unknown)."""
    status = {outcome.name: outcome.status for outcome in report.outcomes}
    if status.get("pkg-upgrade") != "ok" or "ok" not in (status.get("freebsd-update"), status.get("pkgbase")):
        return None
    found = {finding.key: finding for finding in report.findings}
    base: list[dict[str, Any]] = []
    if "patch:base" in found:
        data = found["patch:base"].data
        base = data.get("upgrades") or [{"name": "FreeBSD", "new": data.get("target", ""),
                                         "files": data.get("file_count", 0)}]
    packages = found["patch:packages"].data["upgrades"] if "patch:packages" in found else []
    return {"base": list(base), "packages": list(packages)}


def run_check(context: TaskContext) -> dict[str, Any]:
    """Run the checks (FreeBSD only; skipped elsewhere, never pretended), store and announce."""
    runtime = context.runtime
    settings: HostopsSettings = runtime.settings.section("hostops")
    if settings.check_platform == "debian":
        from bhype_hostops.debian_checks import debian_report

        report = debian_report(runtime.runner, settings.check_timeout, context.log)
    elif checks_apply(settings, runtime.settings.core.platform):
        report = Checks(runtime.runner, settings, context.log).all()
    else:
        context.log("not a FreeBSD host: the pkg and freebsd-update checks are skipped")
        report = CheckReport([Outcome(name, "skipped", "not a FreeBSD host") for name in NAMES])
    record = record_run(runtime, report)
    for finding in record.announce:
        runtime.notify(_event(finding, context.task_id))
    errors = [f"{o.name}: {o.message}" for o in report.outcomes if o.status == "error"]
    for line in errors:
        context.log(line, "warning")
    result: dict[str, Any] = {}
    patches = pending_patches(report)
    if patches is not None:
        result["patches"] = patches
    return result | {"run": record.run_id, "findings": len(report.findings), "announced": len(record.announce),
            "opened": record.opened, "resolved": record.resolved,
            "checks": {o.name: o.status for o in report.outcomes}, "errors": errors}
