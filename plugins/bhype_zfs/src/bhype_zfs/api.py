"""The ``/api/v1/zfs`` router: status, pool initialisation, VM import (snapshot routes: :mod:`api_snapshots`).

The API process runs no host command (the worker does): ``GET`` routes answer from the
database (the status probe, pool state recorded by the health check, schedules); everything that needs the
host, reads included, is a task: ``202`` with its id, its result under ``/api/v1/tasks/{id}``.
Input is validated before anything is queued (422 naming the field). Pool-level routes are for
admins.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from bhype_core.plugin_api import AdminDep, Int64, Principal, PrincipalDep, RuntimeDep, TaskAccepted, accept_task
from bhype_zfs import health, pool_argv
from bhype_zfs.names import check_dataset
from bhype_zfs.pool_init import INITIALISED_PATTERN
from bhype_zfs.status import PROBE_KIND, ZfsStatusReport, status_report
from bhype_zfs.tool import zfs_settings

__all__ = ["AdminDep", "TaskAccepted", "make_router", "submit"]


def submit(runtime: Any, principal: Principal, kind: str, arguments: dict[str, Any]) -> TaskAccepted:
    """Queue ``kind`` for the caller (the per-user task queue): the core's :func:`accept_task`."""
    return accept_task(runtime, principal, kind, arguments)


class PoolInit(BaseModel):
    """A new pool from named disks, or an existing pool to adopt."""

    pool: str = Field(examples=["tank"])
    disks: list[str] = Field(default_factory=list, examples=[["/dev/ada1", "/dev/ada2"]])
    layout: str = Field("mirror", description="single, mirror, raidz1, raidz2 or raidz3")
    adopt: bool = Field(False, description="use an existing (imported or importable) pool instead")
    force: bool = Field(False, description="overwrite old partition tables, file systems and exported pools' labels")
    root: str | None = Field(None, description="bHype's dataset under the pool (default zfs.root)")
    ashift: Int64 | None = 12  # the range (9-16) is checked with the other fields
    mountpoint: str | None = None
    initialised_at: str | None = Field(
        None, pattern=INITIALISED_PATTERN, examples=["2026-11-27T09:00:00Z"],
        description="the initialised_at of a plan shown before, so the same commands come out again",
    )
    confirm_commands: list[str] | None = Field(
        None, description="the commands of the plan shown and confirmed: /init refuses (the task fails, "
                          "nothing runs) when the plan worked out now differs",
    )

    def checked(self, runtime: Any) -> dict[str, Any]:
        """The task arguments, after every check that needs no host command (layout, disk
        count, names); the disks themselves are probed by the task."""
        from bhype_zfs.argv import Tools

        arguments = self.model_dump()
        arguments["root"] = self.root or zfs_settings(runtime).root
        check_dataset(f"{pool_argv.check_pool(self.pool)}/{arguments['root']}", "root")
        if not self.adopt:
            members = pool_argv.pool_disks(Tools(platform="linux"), self.pool, self.disks)
            pool_argv.create_pool(Tools(), self.pool, self.layout, [m.vdev for m in members],
                                  ashift=self.ashift, mountpoint=self.mountpoint)
        return arguments


def make_router() -> APIRouter:
    """Build the plugin's router (a fresh one per app: no import-time globals)."""
    from bhype_zfs.api_snapshots import make_snapshot_router

    router = APIRouter(tags=["zfs"])

    @router.get("/status", response_model=ZfsStatusReport)
    def status(runtime: RuntimeDep, principal: PrincipalDep) -> ZfsStatusReport:
        """OpenZFS on the host and the configured pool as the worker last probed them
        (``probed_at``, ``age_seconds``); the API process runs no host command."""
        return status_report(runtime)

    @router.post("/status/refresh", status_code=202, response_model=TaskAccepted)
    def refresh_status(runtime: RuntimeDep, principal: AdminDep) -> TaskAccepted:
        """Queue ``zfs.probe``: the worker probes OpenZFS and the configured pool now."""
        return submit(runtime, principal, PROBE_KIND, {})

    @router.get("/pools")
    def pools(runtime: RuntimeDep, principal: PrincipalDep) -> dict[str, Any]:
        """Every pool's health and space as the last health check recorded them (``checked``)."""
        settings = zfs_settings(runtime)
        return {"pool": settings.pool or None, "root": settings.root_dataset or None, "pools": health.recorded(runtime)}

    @router.post("/pools/check", status_code=202, response_model=TaskAccepted)
    def check_pools(runtime: RuntimeDep, principal: AdminDep) -> TaskAccepted:
        """Queue ``zfs.check``: every pool's health, space and devices now (notifies changes)."""
        return submit(runtime, principal, "zfs.check", {})

    @router.post("/init/plan", status_code=202, response_model=TaskAccepted)
    def init_plan(body: PoolInit, runtime: RuntimeDep, principal: AdminDep) -> TaskAccepted:
        """Queue ``zfs.plan_init``: its result lists the exact commands; nothing changes.

        Disks holding a partition table, a file system or a pool label are refused (one entry
        per disk and reason) unless ``force``; mounted disks, swap and members of imported
        pools always.
        """
        return submit(runtime, principal, "zfs.plan_init", body.checked(runtime))

    @router.post("/init", status_code=202, response_model=TaskAccepted)
    def init(body: PoolInit, runtime: RuntimeDep, principal: AdminDep) -> TaskAccepted:
        """Queue ``zfs.init_pool``: the same checks as ``/init/plan``, then the commands (each in its log)."""
        return submit(runtime, principal, "zfs.init_pool", body.checked(runtime))

    @router.post("/import-vms", status_code=202, response_model=TaskAccepted)
    def import_vms(runtime: RuntimeDep, principal: AdminDep, datastore: str | None = None,
                   register: bool = True) -> TaskAccepted:
        """Queue ``zfs.import_vms``: VMs found on the datastore's pool by their user properties,
        registered unless ``register=false`` (then only listed)."""
        from bhype_zfs.vms import datastore_of

        datastore_of(runtime, datastore)  # an unknown or non-ZFS datastore is a 422 now
        return submit(runtime, principal, "zfs.import_vms", {"datastore": datastore, "register": register})

    router.include_router(make_snapshot_router())
    return router
