"""``GET /api/v1/hosts``: the group's hosts, their versions, capacity and state (every user)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from bhype_core.api.deps import RuntimeDep
from bhype_core.api.principal import PrincipalDep
from bhype_core.hosts.registry import host_states


class HostPublic(BaseModel):
    """One host: identity, ``state`` (reachable/unreachable), heartbeat age in seconds,
    capacity, versions of bHype and each plugin, and the task kinds its worker knows."""

    name: str
    address: str
    platform: str
    hypervisor: str
    state: str
    heartbeat_age: float | None
    capacity: dict[str, Any]
    versions: dict[str, str]
    task_kinds: list[str]
    registered: str


class HostList(BaseModel):
    """Every registered host, by name."""

    hosts: list[HostPublic]


def make_router() -> APIRouter:
    """Build the hosts router; mounted at ``/api/v1/hosts``."""
    router = APIRouter(tags=["hosts"])

    @router.get("", response_model=HostList)
    def list_hosts(runtime: RuntimeDep, principal: PrincipalDep) -> HostList:
        """Every host of the group with its state (a worker that stopped heartbeating is unreachable)."""
        return HostList(hosts=[HostPublic(**state.to_dict()) for state in host_states(runtime)])

    return router
