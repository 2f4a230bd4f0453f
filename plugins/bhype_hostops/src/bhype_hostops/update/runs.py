"""Reading and writing ``hostops_update_run`` rows (each change committed at once: a worker
killed by the reboot must find everything the steps before it recorded)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlmodel import col, select

from bhype_core.plugin_api import NotFound, session, utcnow
from bhype_hostops.update.models import OPEN_STATES, UpdateRun


def create(runtime: Any, owner: str, task_id: str, plan: dict[str, Any], mode: str) -> UpdateRun:
    """A new run in state ``running``."""
    with session(runtime, write=True) as db:
        run = UpdateRun(owner=owner, task_id=task_id, plan=plan, data={"mode": mode, "done": []})
        db.add(run)
        db.flush()
        db.refresh(run)
        return run


def get(runtime: Any, run_id: int) -> UpdateRun:
    """Run ``run_id``.

    :raises NotFound: there is none.
    """
    with session(runtime) as db:
        run = db.get(UpdateRun, run_id)
        if run is None:
            raise NotFound(f"no host update run {run_id}")
        return run


def latest(runtime: Any, open_only: bool = False) -> UpdateRun | None:
    """The newest run (or the newest still ``running`` or ``failed``)."""
    with session(runtime) as db:
        query = select(UpdateRun).order_by(col(UpdateRun.id).desc()).limit(1)
        if open_only:
            query = query.where(col(UpdateRun.state).in_(OPEN_STATES))
        return db.exec(query).first()


def recent(runtime: Any, limit: int = 20) -> list[UpdateRun]:
    """The newest runs first."""
    with session(runtime) as db:
        return list(db.exec(select(UpdateRun).order_by(col(UpdateRun.id).desc()).limit(limit)))


def update(runtime: Any, run_id: int, *, data: dict[str, Any] | None = None, **fields: Any) -> UpdateRun:
    """Merge ``data`` into the run's data and set ``fields`` (state, step, error, task_id)."""
    with session(runtime, write=True) as db:
        run = db.get(UpdateRun, run_id)
        if run is None:
            raise NotFound(f"no host update run {run_id}")
        if data:
            run.data = {**run.data, **data}
        for name, value in fields.items():
            setattr(run, name, value)
        run.updated = utcnow()
        db.add(run)
        db.flush()
        db.refresh(run)
        return run


def report(runtime: Any, run_id: int, step: str, state: str, message: str) -> UpdateRun:
    """Append one step report (``state``: done, skipped, failed) and, when done or skipped,
    mark the step finished so a resume never repeats it."""
    with session(runtime, write=True) as db:
        run = db.get(UpdateRun, run_id)
        if run is None:
            raise NotFound(f"no host update run {run_id}")
        at = datetime.now(UTC).isoformat()
        run.steps = [*run.steps, {"step": step, "state": state, "message": message, "at": at}]
        if state in ("done", "skipped"):
            run.data = {**run.data, "done": [*run.data.get("done", []), step]}
        run.step = step
        run.updated = utcnow()
        db.add(run)
        db.flush()
        db.refresh(run)
        return run
