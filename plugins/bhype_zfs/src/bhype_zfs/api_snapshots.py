"""``/api/v1/zfs/snapshots``, ``/clones`` and ``/schedules``: VM snapshots, clones and schedules.

A VM target is checked against the caller (an operator acts only on their own VMs; another's
is "not found"); dataset targets and schedules are for admins. Snapshot work, listing
included, runs as tasks (see :mod:`bhype_zfs.api`); schedules live in the database.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from bhype_core.plugin_api import Forbidden, Principal, PrincipalDep, RuntimeDep
from bhype_zfs import snapshots
from bhype_zfs.api import AdminDep, TaskAccepted, submit
from bhype_zfs.clones import MODES
from bhype_zfs.models import ZfsScheduleBase
from bhype_zfs.names import check_tag
from bhype_zfs.schedules import create_schedule, delete_schedule, list_schedules
from bhype_zfs.vms import resolve


def check_target(runtime: Any, principal: Principal, vm: str | None, dataset: str | None) -> None:
    """The caller may act on the target: their own VM (admins: any), or a dataset (admins only);
    then the target itself is checked (no host command): a 404 or 422 now, not a failed task."""
    if dataset is not None and not principal.is_admin:
        raise Forbidden("only admins act on datasets directly; name your VM instead")
    if vm is not None:
        from bhype_core.plugin_api import get_vm

        get_vm(runtime, vm, principal)  # NotFound for another user's VM
    resolve(runtime, vm, dataset)


class Target(BaseModel):
    """A VM (``vm``) or, for admins, a dataset tree (``dataset``)."""

    vm: str | None = None
    dataset: str | None = None

    def arguments(self) -> dict[str, Any]:
        return {k: v for k, v in (("vm", self.vm), ("dataset", self.dataset)) if v is not None}


class SnapshotCreate(Target):
    """A manual snapshot; ``name`` defaults to ``manual-<UTC time>``."""

    name: str | None = None
    recursive: bool = True


class SnapshotRef(Target):
    """One snapshot of the target."""

    name: str


class Rollback(SnapshotRef):
    """Roll back; ``destroy_newer`` destroys snapshots taken after it (else they make it refuse)."""

    destroy_newer: bool = False


class HoldRequest(SnapshotRef):
    """A hold tag on one snapshot (zfs-hold(8))."""

    tag: str = Field(examples=["bhype-backup"])


class CloneRequest(BaseModel):
    """Clone VM ``source`` as ``target``."""

    source: str
    target: str
    snapshot: str | None = Field(None, description="existing snapshot; default: a new one")
    mode: str = Field("linked", description="linked (O(1)), full (independent copy) or promote")


def make_snapshot_router() -> APIRouter:
    """Snapshot, clone and schedule routes (included by :func:`bhype_zfs.api.make_router`)."""
    router = APIRouter()

    def queue(kind: str, body: Target, principal: Principal, runtime: Any, **extra: Any) -> TaskAccepted:
        check_target(runtime, principal, body.vm, body.dataset)
        return submit(runtime, principal, kind, {**body.arguments(), **extra})

    @router.post("/snapshots/list", status_code=202, response_model=TaskAccepted)
    def list_all(body: Target, runtime: RuntimeDep, principal: PrincipalDep) -> TaskAccepted:
        """Queue ``zfs.list_snapshots``: the VM's snapshots (all disks), sizes and hold counts."""
        return queue("zfs.list_snapshots", body, principal, runtime)

    @router.post("/snapshots/holds", status_code=202, response_model=TaskAccepted)
    def list_holds(body: SnapshotRef, runtime: RuntimeDep, principal: PrincipalDep) -> TaskAccepted:
        """Queue ``zfs.list_holds``: the holds on one snapshot of the tree."""
        snapshots.require_name(body.name)
        return queue("zfs.list_holds", body, principal, runtime, name=body.name)

    @router.post("/snapshots", status_code=202, response_model=TaskAccepted)
    def take(body: SnapshotCreate, runtime: RuntimeDep, principal: PrincipalDep) -> TaskAccepted:
        """Queue ``zfs.snapshot``: every disk of the VM in one atomic ``zfs snapshot -r``."""
        name = snapshots.require_name(body.name) if body.name else None
        return queue("zfs.snapshot", body, principal, runtime, name=name, recursive=body.recursive)

    @router.post("/snapshots/rollback", status_code=202, response_model=TaskAccepted)
    def rollback(body: Rollback, runtime: RuntimeDep, principal: PrincipalDep) -> TaskAccepted:
        """Queue ``zfs.rollback`` (refused when it runs if the VM is running or newer snapshots exist)."""
        snapshots.require_name(body.name)
        return queue("zfs.rollback", body, principal, runtime, name=body.name, destroy_newer=body.destroy_newer)

    @router.post("/snapshots/destroy", status_code=202, response_model=TaskAccepted)
    def destroy(body: SnapshotRef, runtime: RuntimeDep, principal: PrincipalDep) -> TaskAccepted:
        """Queue ``zfs.destroy_snapshot`` (refused when held or cloned)."""
        snapshots.require_name(body.name)
        return queue("zfs.destroy_snapshot", body, principal, runtime, name=body.name)

    @router.post("/snapshots/hold", status_code=202, response_model=TaskAccepted)
    def hold(body: HoldRequest, runtime: RuntimeDep, principal: PrincipalDep) -> TaskAccepted:
        """Queue ``zfs.hold``."""
        snapshots.require_name(body.name)
        return queue("zfs.hold", body, principal, runtime, name=body.name, tag=check_tag(body.tag))

    @router.post("/snapshots/release", status_code=202, response_model=TaskAccepted)
    def release(body: HoldRequest, runtime: RuntimeDep, principal: PrincipalDep) -> TaskAccepted:
        """Queue ``zfs.release``."""
        snapshots.require_name(body.name)
        return queue("zfs.release", body, principal, runtime, name=body.name, tag=check_tag(body.tag))

    @router.post("/clones", status_code=202, response_model=TaskAccepted)
    def clone(body: CloneRequest, runtime: RuntimeDep, principal: PrincipalDep) -> TaskAccepted:
        """Queue ``zfs.clone``: a new VM from a snapshot of ``source`` (running or stopped)."""
        from bhype_core.plugin_api import NAME_RE, ValidationErrors

        check_target(runtime, principal, body.source, None)
        if not NAME_RE.match(body.target):
            raise ValidationErrors([("target", f"{body.target!r} is not a VM name")])
        if body.mode not in MODES:
            raise ValidationErrors([("mode", f"must be one of {', '.join(MODES)}, not {body.mode!r}")])
        if body.snapshot is not None:
            snapshots.require_name(body.snapshot)
        return submit(runtime, principal, "zfs.clone", body.model_dump())

    @router.get("/schedules")
    def schedules(runtime: RuntimeDep, principal: AdminDep) -> dict[str, Any]:
        """Every snapshot schedule."""
        return {"schedules": [row.model_dump() for row in list_schedules(runtime)]}

    @router.post("/schedules", status_code=201)
    def add_schedule(body: ZfsScheduleBase, runtime: RuntimeDep, principal: AdminDep) -> dict[str, Any]:
        """Add a schedule; ``vm`` (instead of ``dataset``) snapshots that VM's tree."""
        if body.vm and not body.dataset:
            body = body.model_copy(update={"dataset": resolve(runtime, vm=body.vm).dataset})
        return create_schedule(runtime, body).model_dump()

    @router.delete("/schedules/{name}", status_code=204)
    def remove_schedule(name: str, runtime: RuntimeDep, principal: AdminDep) -> None:
        """Remove a schedule (its snapshots stay)."""
        delete_schedule(runtime, name)

    return router
