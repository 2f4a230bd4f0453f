"""``/api/v1/backup/jobs`` (backup jobs and their runs) and ``/api/v1/backup/points/{id}/verify``.

Jobs are admin-managed records (no host change: created, listed and removed directly); a run,
a verify and a drill are tasks (202 + task id).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Response
from pydantic import BaseModel, Field

from bhype_backup.drill import DRILL_KIND
from bhype_backup.jobs_run import RUN_KIND, active_run
from bhype_backup.jobs_service import (
    JobCreate,
    JobPublic,
    JobUpdate,
    check_drill,
    create_job,
    delete_job,
    edit_job,
    find_job,
    list_jobs,
)
from bhype_backup.verify import VERIFY_KIND
from bhype_core.plugin_api import (
    AdminDep,
    Conflict,
    NotFound,
    PositiveInt64,
    PrincipalDep,
    RuntimeDep,
    TaskAccepted,
    ValidationErrors,
    accept_task,
)


class JobList(BaseModel):
    """``GET /api/v1/backup/jobs``."""

    jobs: list[JobPublic]


class DrillRequest(BaseModel):
    """Drill one point: its sign of life (a job's ``drill_check``: ``{"kind": "serial", "text":
    …}``, ``{"kind": "vnc"}`` or ``{"kind": "tcp", "port": N[, "address": "fe80::…"]}``)."""

    check: dict[str, Any] = Field(examples=[{"kind": "serial", "text": "login:"}, {"kind": "tcp", "port": 22}])
    timeout: int = Field(600, ge=10, le=7200, description="seconds to wait for the sign of life")


class VMDrillRequest(DrillRequest):
    """Drill a VM's newest complete point (on any target), or ``point``."""

    vm: str = Field(max_length=63)
    point: PositiveInt64 | None = None


def _check_sign(body: DrillRequest) -> None:
    problems = check_drill(body.check) or ([] if body.check else [("check.kind", "a sign of life to wait for")])
    if problems:
        raise ValidationErrors([(path.replace("drill_check", "check"), message) for path, message in problems])


def _queue_drill(runtime: Any, principal: Any, point: int, body: DrillRequest) -> TaskAccepted:
    return accept_task(runtime, principal, DRILL_KIND, {"point": point, "check": body.check, "timeout": body.timeout})


def make_router() -> APIRouter:
    """The jobs router, mounted at ``/api/v1/backup`` beside the plugin's other routes."""
    router = APIRouter(tags=["backup"])

    @router.get("/jobs", response_model=JobList)
    def jobs(runtime: RuntimeDep, principal: AdminDep) -> JobList:
        """Every backup job, with its last run."""
        return JobList(jobs=[JobPublic.of(job) for job in list_jobs(runtime)])

    @router.post("/jobs", status_code=201, response_model=JobPublic)
    def add_job(body: JobCreate, runtime: RuntimeDep, principal: AdminDep) -> JobPublic:
        """Add a job (422 naming every bad field; 409 if the name is taken)."""
        return JobPublic.of(create_job(runtime, principal.name, body))

    @router.get("/jobs/{name}", response_model=JobPublic)
    def show_job(name: str, runtime: RuntimeDep, principal: AdminDep) -> JobPublic:
        """One job (by name, or by id)."""
        return JobPublic.of(find_job(runtime, name))

    @router.patch("/jobs/{name}", response_model=JobPublic)
    def change_job(name: str, body: JobUpdate, runtime: RuntimeDep, principal: AdminDep) -> JobPublic:
        """Change a job's fields (by name or id; 422 naming every bad field); ``{"enabled":
        false}`` pauses its schedule and drills, ``true`` resumes them from now."""
        return JobPublic.of(edit_job(runtime, find_job(runtime, name).id or 0, body))

    @router.delete("/jobs/{name}", status_code=204)
    def remove_job(name: str, runtime: RuntimeDep, principal: AdminDep) -> Response:
        """Remove a job; its points stay."""
        delete_job(runtime, find_job(runtime, name).name)
        return Response(status_code=204)

    @router.post("/jobs/{name}/run", status_code=202, response_model=TaskAccepted)
    def run_job(name: str, runtime: RuntimeDep, principal: AdminDep) -> TaskAccepted:
        """Queue ``backup.job.run`` now (409 while a run of this job is queued or running)."""
        job = find_job(runtime, name)
        previous = active_run(runtime, RUN_KIND, job.id or 0)
        if previous is not None:
            raise Conflict(f"job {name} already has a run {previous.state}: task {previous.id}")
        return accept_task(runtime, principal, RUN_KIND, {"job": job.id})

    @router.post("/points/{point_id}/verify", status_code=202, response_model=TaskAccepted)
    def verify_point(point_id: PositiveInt64, runtime: RuntimeDep, principal: PrincipalDep) -> TaskAccepted:
        """Queue ``backup.verify``: re-read the point from its target and check every checksum
        against its manifest (admins, or the owner of the point's VM)."""
        return accept_task(runtime, principal, VERIFY_KIND, {"point": point_id})

    @router.post("/points/{point_id}/drill", status_code=202, response_model=TaskAccepted)
    def drill_point(point_id: PositiveInt64, body: DrillRequest, runtime: RuntimeDep,
                    principal: AdminDep) -> TaskAccepted:
        """Queue ``backup.drill`` for one point (admins): restore it as a temporary VM on the
        isolated drill switch, boot it, wait for the sign of life, destroy it."""
        from bhype_backup.points import get_point

        _check_sign(body)
        get_point(runtime, point_id)
        return _queue_drill(runtime, principal, point_id, body)

    @router.post("/drill", status_code=202, response_model=TaskAccepted)
    def drill_vm(body: VMDrillRequest, runtime: RuntimeDep, principal: AdminDep) -> TaskAccepted:
        """Queue ``backup.drill`` for a VM's newest complete point (or ``point``, which must be
        one of that VM's); admins."""
        from bhype_backup.points import get_point, list_points

        _check_sign(body)
        if body.point is not None:
            point = get_point(runtime, body.point)
            if point.vm_name != body.vm:
                raise NotFound(f"backup point {body.point} is not one of {body.vm}")
        else:
            newest = list_points(runtime, vm=body.vm)
            if not newest:
                raise NotFound(f"no backup of {body.vm} to drill")
            point = newest[0]
        return _queue_drill(runtime, principal, int(point.id or 0), body)

    return router
