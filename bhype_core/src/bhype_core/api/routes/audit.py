"""``GET /api/v1/audit/commands``: the host command audit trail (who ran what, in which task); admins only."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from sqlmodel import Session, col, select

from bhype_core.api.deps import RuntimeDep
from bhype_core.api.principal import AdminDep
from bhype_core.db.models import HostCommand, HostCommandPublic


class HostCommandList(BaseModel):
    """Host commands, newest first."""

    commands: list[HostCommandPublic]


def make_router() -> APIRouter:
    """Build the audit router (a fresh one per app)."""
    router = APIRouter(tags=["audit"])

    @router.get("/api/v1/audit/commands", response_model=HostCommandList)
    def list_host_commands(
        runtime: RuntimeDep,
        admin: AdminDep,
        user: str | None = None,
        task_id: str | None = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> HostCommandList:
        """Host commands the worker ran, newest first, optionally for one user or task (admins only:
        the trail covers every user's tasks)."""
        query = select(HostCommand).order_by(col(HostCommand.id).desc()).limit(limit)
        if user is not None:
            query = query.where(HostCommand.user == user)
        if task_id is not None:
            query = query.where(HostCommand.task_id == task_id)
        with Session(runtime.engine) as session:
            rows = session.exec(query).all()
        return HostCommandList(commands=[HostCommandPublic.model_validate(row, from_attributes=True) for row in rows])

    return router
