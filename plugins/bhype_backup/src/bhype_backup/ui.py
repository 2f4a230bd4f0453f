"""The Backups page, the VM page's Backups tab and their data (through the web UI's hooks).

Both read rows only (targets, jobs, points, running backup tasks); every action on them —
run a job, verify, restore — is a call to the JSON API from the page (``ui_static/backups.js``),
so the same checks apply as for scripts. Running backups show a progress bar fed by the task's
live stream (``/api/v1/tasks/{id}/stream``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlmodel import col, select

from bhype_backup.jobs_models import BackupJob
from bhype_core.plugin_api import Assets, Page, Task, UiRequest, VMTab, human_size, session

HERE = Path(__file__).resolve().parent
BACKUP_KINDS = ("backup.run", "backup.job.run", "backup.restore", "backup.verify", "backup.drill")
POINTS_SHOWN = 200


def point_row(point: Any) -> dict[str, Any]:
    """A point as the tables show it: size, duration, mode, verify and drill state."""
    duration = None
    if point.finished is not None and point.created is not None:
        duration = int((point.finished - point.created).total_seconds())
    return {"id": point.id, "vm": point.vm_name, "target": point.target, "mode": point.mode,
            "created": point.created.strftime("%Y-%m-%d %H:%M UTC") if point.created else "",
            "size": human_size(point.size or 0), "sent": human_size(point.bytes_sent or 0),
            "new": human_size(point.stored_bytes or 0),
            "duration": "-" if duration is None else f"{duration // 60}m {duration % 60:02d}s",
            "verify": point.verify_state, "verified_at": point.verified_at, "drill": point.drill_state,
            "drill_at": point.drill_at, "drill_excerpt": point.drill_excerpt, "job": point.job_id,
            "note": point.note}


def running(runtime: Any, vm: str | None = None) -> list[dict[str, Any]]:
    """Backup, restore, verify and drill tasks queued or running now (of one VM if given)."""
    query = select(Task).where(col(Task.kind).in_(BACKUP_KINDS), col(Task.state).in_(("queued", "running")))
    with session(runtime) as db:
        rows = list(db.exec(query.order_by(col(Task.created))).all())
    found = []
    for row in rows:
        arguments = row.arguments or {}
        if vm is not None and arguments.get("vm") != vm and arguments.get("as") != vm:
            continue
        found.append({"id": row.id, "kind": row.kind, "state": row.state, "vm": arguments.get("vm", ""),
                      "progress": round(row.progress or 0), "message": row.progress_message or ""})
    return found


def page_context(ui: UiRequest) -> dict[str, Any]:
    """Everything the Backups page shows (admins)."""
    from bhype_backup.models import BackupPoint, BackupTarget

    with session(ui.runtime) as db:
        targets = list(db.exec(select(BackupTarget).order_by(col(BackupTarget.name))).all())
        jobs = list(db.exec(select(BackupJob).order_by(col(BackupJob.name))).all())
        points = list(db.exec(select(BackupPoint).where(col(BackupPoint.complete).is_(True))
                              .order_by(col(BackupPoint.created).desc()).limit(POINTS_SHOWN)).all())
    return {
        "targets": [{"name": t.name, "kind": t.kind, "destination": t.destination, "windows": t.windows,
                     "free": human_size(t.free_bytes) if t.free_bytes is not None else "-",
                     "test": "-" if t.test_ok is None else ("ok" if t.test_ok else "failed")} for t in targets],
        "jobs": [{"name": j.name, "schedule": j.schedule, "target": j.target, "mode": j.mode,
                  "selects": " ".join([*(f"vm:{v}" for v in j.vms), *(f"owner:{o}" for o in j.owners),
                                       *(f"tag:{t}" for t in j.tags)]),
                  "retention": j.retention, "last_state": j.last_state or "-", "last_error": j.last_error,
                  "drill": j.drill_schedule or "-", "enabled": j.enabled} for j in jobs],
        "points": [point_row(p) for p in points],
        "running": running(ui.runtime),
    }


def tab_context(ui: UiRequest) -> dict[str, Any]:
    """The VM's points (newest first) and its running backup tasks."""
    from bhype_backup.models import BackupPoint

    query = (select(BackupPoint).where(col(BackupPoint.vm_uuid) == str(ui.vm.uuid), col(BackupPoint.complete).is_(True))
             .order_by(col(BackupPoint.created).desc()).limit(POINTS_SHOWN))
    with session(ui.runtime) as db:
        points = list(db.exec(query).all())
    return {"points": [point_row(p) for p in points], "running": running(ui.runtime, ui.vm.name)}


def pages() -> list[Page]:
    """The Backups page (admins)."""
    return [Page("backups", "backups", "Backups", "backup_ui/backups.html", page_context,
                 nav_label="Backups", nav_order=45, admin_only=True)]


def vm_tabs() -> list[VMTab]:
    """The Backups tab of a VM's page (its owner and admins)."""
    return [VMTab("backups", "Backups", "backup_ui/vm_tab.html", tab_context, order=40)]


def assets() -> Assets:
    """The templates and the page script."""
    return Assets("backup_ui", static_dir=HERE / "ui_static", template_dir=HERE / "ui_templates")
