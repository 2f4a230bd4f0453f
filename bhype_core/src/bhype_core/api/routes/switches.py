"""``/api/v1/switches``: virtual switches. Everyone may list them (to attach NICs); creating,
destroying and changing uplinks is for admins and happens in ``switch.*`` tasks (202)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlmodel import Session

from bhype_core.api.deps import RuntimeDep
from bhype_core.api.limits import Int64
from bhype_core.api.principal import Principal, PrincipalDep
from bhype_core.errors import Conflict, Forbidden
from bhype_core.network.models import SwitchPublic, validate_switch
from bhype_core.network.service import check_new, get_switch, list_switches, vms_on_switch


class SwitchCreate(BaseModel):
    """A new switch (see :class:`~bhype_core.network.models.SwitchConfig` for each field)."""

    name: str
    uplink: str | None = None
    # 64-bit bounds only: the switch rules check the real ranges and name every bad field at once.
    vlan: Int64 | None = None
    mtu: Int64 | None = None
    address: str | None = None
    nat: bool = False
    nat_interface: str | None = None
    description: str = ""


class UplinkChange(BaseModel):
    """The host NIC to bridge, optionally through a vlan(4) interface tagging ``vlan``."""

    uplink: str
    vlan: Int64 | None = Field(None, description="1-4094: bridge <uplink>.<vlan> instead of the NIC")


class SwitchList(BaseModel):
    """Every switch, by name."""

    switches: list[SwitchPublic]


class SwitchDetail(SwitchPublic):
    """A switch and the VMs with a NIC on it."""

    vms: list[str]


class SwitchTask(BaseModel):
    """The task doing the work: follow it under ``/api/v1/tasks/{task_id}``."""

    task_id: str
    kind: str
    switch: str


def _admin(principal: Principal) -> None:
    if not principal.is_admin:
        raise Forbidden("only admins may change virtual switches (they change the host's network)")


def _submit(runtime: Any, principal: Principal, kind: str, arguments: dict[str, Any]) -> SwitchTask:
    from bhype_core.tasks.service import submit

    task = submit(runtime, principal, kind, arguments)
    return SwitchTask(task_id=task.id, kind=kind, switch=arguments.get("name", ""))


def make_router() -> APIRouter:
    """Build the switches router; mounted at ``/api/v1/switches``."""
    router = APIRouter(tags=["switches"])

    @router.get("", response_model=SwitchList)
    def list_all(runtime: RuntimeDep, principal: PrincipalDep) -> SwitchList:
        """Every virtual switch."""
        with Session(runtime.engine) as db:
            rows = list_switches(db)
            return SwitchList(switches=[SwitchPublic.model_validate(r, from_attributes=True) for r in rows])

    @router.get("/{name}", response_model=SwitchDetail)
    def show(name: str, runtime: RuntimeDep, principal: PrincipalDep) -> SwitchDetail:
        """One switch, with the VMs plugged into it."""
        with Session(runtime.engine) as db:
            row = get_switch(db, name)
            public = SwitchPublic.model_validate(row, from_attributes=True)
            return SwitchDetail(**public.model_dump(), vms=vms_on_switch(db, name))

    @router.post("", status_code=202, response_model=SwitchTask)
    def create(body: SwitchCreate, runtime: RuntimeDep, principal: PrincipalDep) -> SwitchTask:
        """Create a switch: a bridge, with optional uplink, VLAN, host address and NAT."""
        _admin(principal)
        config = validate_switch(body.model_dump())
        with Session(runtime.engine) as db:
            check_new(db, config)
        return _submit(runtime, principal, "switch.create", config.model_dump())

    @router.delete("/{name}", status_code=202, response_model=SwitchTask)
    def destroy(name: str, runtime: RuntimeDep, principal: PrincipalDep) -> SwitchTask:
        """Remove a switch no VM uses (its bridge, VLAN interfaces and NAT go too)."""
        _admin(principal)
        with Session(runtime.engine) as db:
            get_switch(db, name)
            users = vms_on_switch(db, name)
        if users:
            raise Conflict(f"switch {name} is used by VM(s) {', '.join(users)}: move their NICs first")
        return _submit(runtime, principal, "switch.destroy", {"name": name})

    @router.post("/{name}/uplink", status_code=202, response_model=SwitchTask)
    def add_uplink(name: str, body: UplinkChange, runtime: RuntimeDep, principal: PrincipalDep) -> SwitchTask:
        """Bridge a host NIC (or its VLAN) into the switch, replacing any previous uplink."""
        _admin(principal)
        with Session(runtime.engine) as db:
            current = get_switch(db, name).config().model_dump()
        validate_switch({**current, "uplink": body.uplink, "vlan": body.vlan})
        arguments = {"name": name, "uplink": body.uplink, "vlan": body.vlan}
        return _submit(runtime, principal, "switch.add_uplink", arguments)

    @router.delete("/{name}/uplink", status_code=202, response_model=SwitchTask)
    def remove_uplink(name: str, runtime: RuntimeDep, principal: PrincipalDep) -> SwitchTask:
        """Take the uplink out: the switch becomes a private network between its VMs."""
        _admin(principal)
        with Session(runtime.engine) as db:
            get_switch(db, name)
        return _submit(runtime, principal, "switch.remove_uplink", {"name": name})

    return router
