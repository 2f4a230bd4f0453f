"""Running backup jobs: the minutely tick that submits due runs, and one job's run.

``backup.jobs.tick`` (a periodic job, every minute, ``@system``) submits, per enabled job whose
schedule has a slot newer than its ``last_slot``, one top-level ``backup.job.run`` task (missed
slots collapse into one run), the drills that are due, and reports jobs that have not
succeeded within their window (``backup.overdue``, once per missed slot). Runs and drills are
owned by the admin who made the job: they and their sub-tasks (``backup.run``,
``backup.restore``, ``vm.start`` …) are checked against that account's role when they run, so
a job never does more than its owner may (an owner who is no longer an admin makes the run
fail, ``forbidden``).

``backup.job.run {"job": ID}`` holds the lock ``backup_job:<id>`` (two runs of one job never
overlap; the tick also skips a slot while a run is queued or running), runs ``backup.run`` as a
sub-task per selected VM, then prunes that VM's points of this job by the job's retention
through ``bhype_backup.points.delete_point``. A VM whose backup failed is not pruned and is
reported (``backup.failed``); the run fails naming them.
"""

from __future__ import annotations

import re
from datetime import timedelta
from typing import Any

from sqlmodel import col, select

from bhype_backup import schedule as cron
from bhype_backup.jobs_models import BackupJob
from bhype_backup.jobs_retention import prune_points
from bhype_backup.jobs_service import get_job, list_jobs, selected_vms, update_job
from bhype_core.plugin_api import Event, Principal, Task, TaskFailed, accept_task, session, utcnow

RUN_KIND = "backup.job.run"
# rsync(1)/write(2) out of space (ENOSPC), a quota, or the target saying so itself.
FULL = re.compile(r"No space left on device|Disk quota exceeded|ENOSPC|target (is )?full", re.IGNORECASE)
TICK_KIND = "backup.jobs.tick"
DRILL_KIND = "backup.drill"


def job_lock(arguments: dict[str, Any]) -> list[str]:
    """``backup_job:<id>``: one run of a job at a time."""
    return [f"backup_job:{arguments.get('job')}"]


def active_run(runtime: Any, kind: str, job_id: int) -> Task | None:
    """A queued or running task of ``kind`` for job ``job_id``, if any."""
    query = select(Task).where(col(Task.kind) == kind, col(Task.state).in_(("queued", "running")))
    with session(runtime) as db:
        rows = list(db.exec(query).all())
    return next((row for row in rows if (row.arguments or {}).get("job") == job_id), None)


def owner_of(job: BackupJob) -> Principal:
    """Whom a scheduled run or drill of ``job`` runs as: the admin who made the job (the worker
    checks that account's role again before it runs anything)."""
    return Principal(job.owner, "admin")


def overdue_slot(job: BackupJob, now: Any) -> Any:
    """The slot this job should have succeeded for by now and did not, or ``None``: the
    newest slot at least ``window_minutes`` old, after the job was made, newer than its last
    success."""
    slot = cron.latest_slot(cron.parse(job.schedule), now - timedelta(minutes=job.window_minutes))
    if slot is None or slot < job.created or (job.last_success is not None and job.last_success >= slot):
        return None
    return slot


def tick(context: Any) -> dict[str, Any]:
    """``backup.jobs.tick``: submit due job runs and drills; report overdue jobs."""
    runtime = context.runtime
    now = utcnow()
    report: dict[str, Any] = {}
    for job in list_jobs(runtime):
        if not job.enabled:
            continue
        done: dict[str, Any] = {}
        slot = cron.due_slot(cron.parse(job.schedule), job.last_slot, now)
        if slot is not None:
            previous = active_run(runtime, RUN_KIND, job.id or 0)
            if previous is not None:  # never a second run beside it; the slot counts as served
                context.log(f"job {job.name}: the {slot:%Y-%m-%d %H:%M} run skipped: task {previous.id} "
                            f"is still {previous.state}", "warning")
                done["skipped"] = previous.id
            else:
                task = accept_task(runtime, owner_of(job), RUN_KIND, {"job": job.id})
                context.log(f"job {job.name}: the {slot:%Y-%m-%d %H:%M} run is task {task.task_id}")
                done["run"] = task.task_id
            update_job(runtime, job.id or 0, last_slot=slot)
        if job.drill_schedule:
            drill_slot = cron.due_slot(cron.parse(job.drill_schedule), job.last_drill_slot, now)
            if drill_slot is not None:
                if active_run(runtime, DRILL_KIND, job.id or 0) is None:
                    done["drill"] = accept_task(runtime, owner_of(job), DRILL_KIND, {"job": job.id}).task_id
                update_job(runtime, job.id or 0, last_drill_slot=drill_slot)
        late = overdue_slot(job, now)
        if late is not None and job.overdue_since != late:
            runtime.notify(Event("backup.overdue", f"backup job {job.name} has not succeeded since "
                                 f"its {late:%Y-%m-%d %H:%M} UTC run was due", severity="warning",
                                 subject=f"backup_job:{job.name}",
                                 data={"job": job.name, "due": late.isoformat(),
                                       "last_success": job.last_success.isoformat() if job.last_success else None}))
            update_job(runtime, job.id or 0, overdue_since=late)
            done["overdue"] = late.isoformat()
        if done:
            report[job.name] = done
    return report


def run_job(context: Any, job: int) -> dict[str, Any]:
    """``backup.job.run``: back up every VM the job selects, then prune each by retention."""
    runtime = context.runtime
    row = get_job(runtime, job)
    started = utcnow()
    update_job(runtime, job, last_task=context.task_id, last_started=started, last_state="running", last_error="")
    vms = selected_vms(runtime, row)
    context.log(f"job {row.name}: {len(vms)} VM(s) to back up to {row.target} ({row.mode})")
    results: dict[str, Any] = {}
    failed: list[str] = []
    try:
        for index, vm in enumerate(vms):
            context.progress(100.0 * index / max(len(vms), 1), f"backing up {vm.name}")
            handle = context.submit("backup.run", {"vm": vm.name, "target": row.target, "mode": row.mode,
                                                   "job": row.id})
            [outcome] = context.wait(handle)
            if not outcome.ok:
                message = (outcome.error or {}).get("message", outcome.state)
                context.log(f"{vm.name}: backup {outcome.state}: {message}", "error")
                failed.append(vm.name)
                results[vm.name] = {"state": outcome.state, "error": message, "task": outcome.id}
                if FULL.search(message):
                    runtime.notify(Event("backup.target_full",
                                         f"target {row.target} is full: backup of {vm.name} failed: {message}",
                                         severity="warning", subject=f"backup-target:{row.target}",
                                         data={"target": row.target, "free": None, "job": row.name, "vm": vm.name,
                                               "error": message}))
                runtime.notify(Event("backup.failed", f"backup of {vm.name} to {row.target} failed: {message}",
                                     severity="error", subject=f"vm:{vm.name}",
                                     data={"job": row.name, "vm": vm.name, "target": row.target,
                                           "task": outcome.id, "error": message}))
                continue
            pruned = prune_points(runtime, context.runner, row, vm.uuid, utcnow())
            if pruned:
                context.log(f"{vm.name}: pruned {len(pruned)} point(s) by retention ({row.retention})")
            results[vm.name] = {"state": "succeeded", "point": (outcome.result or {}).get("point"),
                                "pruned": pruned, "task": outcome.id}
        context.progress(100.0, "done")
    except BaseException as exc:
        update_job(runtime, job, last_finished=utcnow(), last_state="failed", last_error=str(exc) or type(exc).__name__)
        raise
    finished = utcnow()
    if failed:
        error = f"backup failed for {', '.join(failed)}"
        update_job(runtime, job, last_finished=finished, last_state="failed", last_error=error)
        raise TaskFailed(f"job {row.name}: {error}")
    update_job(runtime, job, last_finished=finished, last_state="succeeded", last_success=finished,
               overdue_since=None)
    return {"job": row.name, "vms": results}
