"""``POST /api/v1/tasks/ping``: enqueue the trivial ``core.ping`` task (the API never runs
host work itself; issue 3 replaces this with the full tasks API)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel

from bhype_core.api.deps import RuntimeDep

PING_TASK = "core.ping"


class TaskAccepted(BaseModel):
    """The queued task's id and kind."""

    task_id: str
    kind: str


def task_id_of(handle: Any) -> str:
    """The id of whatever ``BhypeQueue.enqueue`` returned (an id, or an object carrying one)."""
    for attribute in ("task_id", "id"):
        value = getattr(handle, attribute, None)
        if value is not None:
            return str(value)
    return str(handle)


def make_router() -> APIRouter:
    """Build the ping router (a fresh one per app)."""
    router = APIRouter(tags=["tasks"])

    @router.post("/api/v1/tasks/ping", status_code=202, response_model=TaskAccepted)
    def ping(runtime: RuntimeDep) -> TaskAccepted:
        """Queue a ``core.ping`` task and answer 202 with its id; the worker runs it."""
        handle = runtime.queue.enqueue(PING_TASK, {}, user=None)
        return TaskAccepted(task_id=task_id_of(handle), kind=PING_TASK)

    return router
