"""Findings in the database, deduplicated: a known finding pops once, again only when it
changes or after its dismissal runs out; a finding a later check no longer reports is resolved."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlmodel import col, select

from bhype_core.plugin_api import NotFound, Runtime, session
from bhype_hostops.checks import CheckReport
from bhype_hostops.models import HostopsCheckRun, HostopsFinding


@dataclass(frozen=True)
class RunRecord:
    """What one check run changed: findings to announce, how many were resolved."""

    run_id: int
    announce: list[dict[str, Any]]
    opened: int
    resolved: int


def _aware(value: datetime | None) -> datetime | None:
    return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)


def public(row: HostopsFinding) -> dict[str, Any]:
    """A finding as the API and UI show it (raw output included)."""
    return {"id": row.id, "key": row.key, "kind": row.kind, "source": row.source, "package": row.package,
            "version": row.version, "title": row.title, "data": row.data, "raw_output": row.raw_output,
            "state": row.state, "first_seen": row.first_seen.isoformat(), "last_seen": row.last_seen.isoformat(),
            "resolved_at": row.resolved_at.isoformat() if row.resolved_at else None,
            "dismissed_until": row.dismissed_until.isoformat() if row.dismissed_until else None,
            "dismissed_by": row.dismissed_by}


def record_run(runtime: Runtime, report: CheckReport, now: datetime | None = None) -> RunRecord:
    """Store ``report``: update, open or reopen each finding; resolve open findings of a source
    whose check answered but no longer reports them; say which to announce."""
    now = now or datetime.now(UTC)
    announce: list[dict[str, Any]] = []
    opened = resolved = 0
    answered = report.checked_sources()
    with session(runtime, write=True) as db:
        rows = {row.key: row for row in db.exec(select(HostopsFinding))}
        for finding in report.findings:
            row = rows.get(finding.key)
            digest = finding.digest
            if row is None:
                row = HostopsFinding(key=finding.key, kind=finding.kind, source=finding.source,
                                     package=finding.package, digest=digest, first_seen=now)
                opened += 1
            elif row.state != "open":
                row.state, row.resolved_at, row.dismissed_until = "open", None, None
                row.notified_digest = ""  # it came back: tell again
                opened += 1
            if digest != row.digest:
                row.dismissed_until = None  # a change pops even a dismissed finding
            row.source, row.version, row.title = finding.source, finding.version, finding.title
            row.data, row.raw_output, row.digest, row.last_seen = finding.data, finding.raw_output, digest, now
            until = _aware(row.dismissed_until)
            quiet = until is not None and until > now
            if until is not None and not quiet:
                row.dismissed_until = None  # the dismissal ran out: it pops again
                row.notified_digest = ""
            if not quiet and row.notified_digest != digest:
                row.notified_digest = digest
                db.add(row)
                db.flush()
                announce.append(public(row))
            db.add(row)
        current = {finding.key for finding in report.findings}
        for key, row in rows.items():
            if row.state == "open" and key not in current and row.source in answered:
                row.state, row.resolved_at = "resolved", now
                resolved += 1
                db.add(row)
        run = HostopsCheckRun(started=now, finished=datetime.now(UTC),
                              checks=[outcome.to_dict() for outcome in report.outcomes],
                              opened=opened, resolved=resolved)
        db.add(run)
        db.flush()
        run_id = run.id
    assert run_id is not None
    return RunRecord(run_id, announce, opened, resolved)


def list_findings(runtime: Runtime, state: str = "open") -> list[dict[str, Any]]:
    """Findings (``open``, ``resolved`` or ``all``): vulnerabilities first, then by package."""
    with session(runtime) as db:
        query = select(HostopsFinding)
        if state != "all":
            query = query.where(col(HostopsFinding.state) == state)
        rows = list(db.exec(query))
    rows.sort(key=lambda row: (row.kind != "vulnerability", row.package, row.key))
    return [public(row) for row in rows]


def last_run(runtime: Runtime) -> dict[str, Any] | None:
    """The newest check run: when, each check's status and message."""
    with session(runtime) as db:
        run = db.exec(select(HostopsCheckRun).order_by(col(HostopsCheckRun.id).desc()).limit(1)).first()
    if run is None:
        return None
    return {"id": run.id, "started": run.started.isoformat(), "opened": run.opened, "resolved": run.resolved,
            "checks": run.checks}


def dismiss(runtime: Runtime, finding_id: int, days: int, by: str, now: datetime | None = None) -> dict[str, Any]:
    """Silence finding ``finding_id`` for ``days`` (it pops again afterwards, or when it changes).

    :raises NotFound: no such finding.
    """
    now = now or datetime.now(UTC)
    with session(runtime, write=True) as db:
        row = db.get(HostopsFinding, finding_id)
        if row is None:
            raise NotFound(f"no finding {finding_id}")
        row.dismissed_until = now + timedelta(days=days)
        row.dismissed_by = by[:64]
        db.add(row)
        db.flush()
        return public(row)
