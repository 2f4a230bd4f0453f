"""``/api/v1/backup/targets``, ``/points``, ``/run`` and ``/points/{id}/restore``.

Reads come from the database (no host command in the API process); every change is a task
(202 + task id). Targets are for admins; a VM's owner may back up their VM, list its points
and restore them. A target's secret goes into the ``backup.target_add`` task once and is
overwritten there as soon as the worker has stored it; no route ever returns it.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter
from pydantic import BaseModel, Field, SecretStr

from bhype_backup import points as point_rows
from bhype_backup import targets as target_rows
from bhype_core.plugin_api import (
    AdminDep,
    NotFound,
    PositiveInt64,
    PrincipalDep,
    RuntimeDep,
    TaskAccepted,
    accept_task,
    find_vm,
    get_vm,
)


class TargetCreate(BaseModel):
    """A new target. ``password``: an rsync daemon's; ``key``: the SSH private key (OpenSSH
    format) for SSH and ZFS targets. Neither is ever shown again."""

    name: str = Field(examples=["nas"])
    destination: str = Field(examples=["rsync://backup@nas.example:873/vms/bhype", "/mnt/backups",
                                       "ssh://backup@host.example/srv/backups", "zfs://root@host.example/tank/bk"])
    password: SecretStr | None = None
    key: SecretStr | None = None
    windows: bool = Field(False, description="the target is a Windows host (NTFS rules, no hard links)")
    description: str = Field("", max_length=255)


class BackupRequest(BaseModel):
    """Back ``vm`` up to ``target`` now."""

    vm: str
    target: str
    mode: Literal["snapshot", "stop", "crash"] = "stop"


class RestoreRequest(BaseModel):
    """Restore a point: onto its VM (``as`` null; stopped, ``confirm`` true) or as a new VM."""

    model_config = {"populate_by_name": True}

    as_: str | None = Field(None, alias="as", description="a new VM's name (new UUID and MACs)")
    disk: str | None = Field(None, description="only this disk (onto the same VM)")
    confirm: bool = False
    datastore: str | None = Field(None, description="for a new VM: the datastore (default: the original's)")


def make_backup_router() -> APIRouter:
    """The targets, points, run and restore routes (mounted under ``/api/v1/backup``)."""
    router = APIRouter(tags=["backup"])

    @router.get("/targets", response_model=list[target_rows.TargetPublic])
    def list_targets(runtime: RuntimeDep, principal: AdminDep) -> list[Any]:
        """Every backup target (never a secret: ``has_secret`` says whether one is stored)."""
        return [target_rows.public(t) for t in target_rows.list_targets(runtime)]

    @router.get("/targets/{name}", response_model=target_rows.TargetPublic)
    def show_target(name: str, runtime: RuntimeDep, principal: AdminDep) -> Any:
        """One target, with the fingerprints of its pinned SSH host key and its last test."""
        return target_rows.public(target_rows.get_target(runtime, name))

    @router.post("/targets", status_code=202, response_model=TaskAccepted)
    def add_target(body: TargetCreate, runtime: RuntimeDep, principal: AdminDep) -> TaskAccepted:
        """Queue ``backup.target_add``: the worker pins the host key and stores the secret."""
        password = body.password.get_secret_value() if body.password else None
        key = body.key.get_secret_value() if body.key else None
        target_rows.check_add(body.name, body.destination, password, key)
        arguments = {"name": body.name, "destination": body.destination, "windows": body.windows,
                     "description": body.description, "password": password, "key": key}
        return accept_task(runtime, principal, "backup.target_add", arguments)

    @router.post("/targets/{name}/test", status_code=202, response_model=TaskAccepted)
    def test_target(name: str, runtime: RuntimeDep, principal: AdminDep) -> TaskAccepted:
        """Queue ``backup.target_test``: reachable, logged in, writable, free space."""
        target_rows.get_target(runtime, name)
        return accept_task(runtime, principal, "backup.target_test", {"name": name})

    @router.delete("/targets/{name}", status_code=202, response_model=TaskAccepted)
    def remove_target(name: str, runtime: RuntimeDep, principal: AdminDep, force: bool = False) -> TaskAccepted:
        """Queue ``backup.target_remove`` (refused while points are listed, unless ``force``)."""
        target_rows.get_target(runtime, name)
        return accept_task(runtime, principal, "backup.target_remove", {"name": name, "force": force})

    @router.get("/points", response_model=list[point_rows.PointPublic])
    def list_points(runtime: RuntimeDep, principal: PrincipalDep, vm: str | None = None,
                    target: str | None = None) -> list[Any]:
        """Complete backup points, newest first; an operator sees those of their own VMs."""
        if vm is not None:
            row = get_vm(runtime, vm, principal) if not principal.is_admin else find_vm(runtime, vm)
            found = point_rows.list_points(runtime, vm=vm, target=target)
            if row is not None and not principal.is_admin:
                found = [p for p in found if p.vm_uuid == row.uuid]
        else:
            found = point_rows.list_points(runtime, target=target)
            if not principal.is_admin:
                mine = {v.uuid for v in _own_vms(runtime, principal)}
                found = [p for p in found if p.vm_uuid in mine]
        return [point_rows.public(p) for p in found]

    @router.get("/points/{point_id}", response_model=point_rows.PointPublic)
    def show_point(point_id: PositiveInt64, runtime: RuntimeDep, principal: PrincipalDep) -> Any:
        """One complete point."""
        point = point_rows.get_point(runtime, point_id)
        if not principal.is_admin and point.vm_uuid not in {v.uuid for v in _own_vms(runtime, principal)}:
            raise NotFound(f"no backup point {point_id}")
        return point_rows.public(point)

    @router.delete("/points/{point_id}", status_code=202, response_model=TaskAccepted)
    def delete_point(point_id: PositiveInt64, runtime: RuntimeDep, principal: AdminDep) -> TaskAccepted:
        """Queue ``backup.delete_point``: its directory on the target, then its row."""
        point_rows.get_point(runtime, point_id)
        return accept_task(runtime, principal, "backup.delete_point", {"point": point_id})

    @router.post("/run", status_code=202, response_model=TaskAccepted)
    def run_backup(body: BackupRequest, runtime: RuntimeDep, principal: PrincipalDep) -> TaskAccepted:
        """Queue ``backup.run``: one VM to one target now (the VM's owner or an admin)."""
        target_rows.get_target(runtime, body.target)
        arguments = {"vm": body.vm, "target": body.target, "mode": body.mode, "job": None}
        return accept_task(runtime, principal, "backup.run", arguments, vm=body.vm)

    @router.post("/points/{point_id}/restore", status_code=202, response_model=TaskAccepted)
    def restore_point(point_id: PositiveInt64, body: RestoreRequest, runtime: RuntimeDep,
                      principal: PrincipalDep) -> TaskAccepted:
        """Queue ``backup.restore`` (the point's VM's owner or an admin)."""
        point = point_rows.get_point(runtime, point_id)
        arguments = {"point": point_id, "vm": point.vm_name, "as": body.as_, "disk": body.disk,
                     "confirm": body.confirm, "datastore": body.datastore}
        return accept_task(runtime, principal, "backup.restore", arguments, vm=body.as_ or point.vm_name)

    return router


def _own_vms(runtime: Any, principal: Any) -> list[Any]:
    from bhype_core.plugin_api import list_vms

    return list(list_vms(runtime, principal))
