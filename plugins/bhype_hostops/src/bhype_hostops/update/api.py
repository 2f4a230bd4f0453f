"""``/api/v1/hostops/update``: the plan, runs, and starting, resuming or abandoning a run.

Every change is a task (202 with its id): the API process runs no host command. Admins only.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from bhype_core.plugin_api import (
    AdminDep,
    NotFound,
    RuntimeDep,
    TaskAccepted,
    ValidationErrors,
    accept_task,
    list_tasks,
)
from bhype_hostops.update import runs

PLAN_KIND = "hostops.update.plan"
RUN_KIND = "hostops.update.run"


class RunRequest(BaseModel):
    """Start a run: ``confirm`` must be true (the caller has seen the plan)."""

    confirm: bool = False


def latest_plan(runtime: Any, principal: Any) -> dict[str, Any]:
    """The newest plan task's outcome (``state``, ``plan`` when it succeeded)."""
    tasks = list_tasks(runtime, principal, kind=PLAN_KIND, limit=1)
    if not tasks:
        raise NotFound("no update plan yet: POST /api/v1/hostops/update/plan")
    task = tasks[0]
    return {"task_id": task.id, "state": task.state, "plan": task.result if task.state == "succeeded" else None,
            "error": task.error, "finished": task.finished.isoformat() if task.finished else None}


def make_router() -> APIRouter:
    """Build the router (a fresh one per app)."""
    router = APIRouter(tags=["hostops"])

    @router.post("/plan", status_code=202, response_model=TaskAccepted)
    def plan(runtime: RuntimeDep, principal: AdminDep) -> TaskAccepted:
        """Queue ``hostops.update.plan``: what a run would do (VMs, services, updates, reboot,
        boot environment, problems); nothing changes."""
        return accept_task(runtime, principal, PLAN_KIND, {})

    @router.get("/plan")
    def last_plan(runtime: RuntimeDep, principal: AdminDep) -> dict[str, Any]:
        """The newest plan (from its task's result)."""
        return latest_plan(runtime, principal)

    @router.post("/run", status_code=202, response_model=TaskAccepted)
    def run(body: RunRequest, runtime: RuntimeDep, principal: AdminDep) -> TaskAccepted:
        """Queue ``hostops.update.run``: boot environment, stop VMs and services, install,
        reboot, bring everything back. Needs ``confirm: true``."""
        if not body.confirm:
            raise ValidationErrors([("confirm", "must be true: look at the plan first")])
        return accept_task(runtime, principal, RUN_KIND, {})

    @router.get("/runs")
    def list_runs(runtime: RuntimeDep, principal: AdminDep) -> list[dict[str, Any]]:
        """The newest runs first, each with its plan, steps and state."""
        return [item.to_dict() for item in runs.recent(runtime)]

    @router.get("/runs/{run_id}")
    def show_run(run_id: int, runtime: RuntimeDep, principal: AdminDep) -> dict[str, Any]:
        """One run."""
        return runs.get(runtime, run_id).to_dict()

    @router.post("/runs/{run_id}/resume", status_code=202, response_model=TaskAccepted)
    def resume(run_id: int, runtime: RuntimeDep, principal: AdminDep) -> TaskAccepted:
        """Queue ``hostops.update.run`` to resume a stopped run from the step that failed."""
        runs.get(runtime, run_id)
        return accept_task(runtime, principal, RUN_KIND, {"run": run_id})

    @router.post("/runs/{run_id}/abort", status_code=202, response_model=TaskAccepted)
    def abort(run_id: int, runtime: RuntimeDep, principal: AdminDep) -> TaskAccepted:
        """Queue ``hostops.update.run`` in ``bring_back`` mode: skip the rest of the update,
        start the VMs and services the run stopped, run the checks."""
        runs.get(runtime, run_id)
        return accept_task(runtime, principal, RUN_KIND, {"run": run_id, "mode": "bring_back"})

    return router
