"""``/api/v1/backup/jobs`` (backup jobs and their runs) and ``/api/v1/backup/points/{id}/verify``.

Jobs are admin-managed records (no host change: created, listed and removed directly); a run,
a verify and a drill are tasks (202 + task id).
"""

from __future__ import annotations

from fastapi import APIRouter, Response
from pydantic import BaseModel

from bhype_backup.jobs_run import RUN_KIND, active_run
from bhype_backup.jobs_service import JobCreate, JobPublic, create_job, delete_job, get_job, list_jobs
from bhype_backup.verify import VERIFY_KIND
from bhype_core.plugin_api import (
    AdminDep,
    Conflict,
    PositiveInt64,
    PrincipalDep,
    RuntimeDep,
    TaskAccepted,
    accept_task,
)


class JobList(BaseModel):
    """``GET /api/v1/backup/jobs``."""

    jobs: list[JobPublic]


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
        """One job."""
        return JobPublic.of(get_job(runtime, name))

    @router.delete("/jobs/{name}", status_code=204)
    def remove_job(name: str, runtime: RuntimeDep, principal: AdminDep) -> Response:
        """Remove a job; its points stay."""
        delete_job(runtime, name)
        return Response(status_code=204)

    @router.post("/jobs/{name}/run", status_code=202, response_model=TaskAccepted)
    def run_job(name: str, runtime: RuntimeDep, principal: AdminDep) -> TaskAccepted:
        """Queue ``backup.job.run`` now (409 while a run of this job is queued or running)."""
        job = get_job(runtime, name)
        previous = active_run(runtime, RUN_KIND, job.id or 0)
        if previous is not None:
            raise Conflict(f"job {name} already has a run {previous.state}: task {previous.id}")
        return accept_task(runtime, principal, RUN_KIND, {"job": job.id})

    @router.post("/points/{point_id}/verify", status_code=202, response_model=TaskAccepted)
    def verify_point(point_id: PositiveInt64, runtime: RuntimeDep, principal: PrincipalDep) -> TaskAccepted:
        """Queue ``backup.verify``: re-read the point from its target and check every checksum
        against its manifest (admins, or the owner of the point's VM)."""
        return accept_task(runtime, principal, VERIFY_KIND, {"point": point_id})

    return router
