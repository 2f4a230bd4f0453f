"""``/api/v1/tasks``: submit, list, show, stream, cancel and retry tasks of the per-user queue.

Every route needs a caller (:data:`PrincipalDep`); a task id the caller may not see answers
404 exactly like an unknown one. The API only writes rows: the worker runs the tasks.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field

from bhype_core.api.deps import RuntimeDep
from bhype_core.api.limits import Offset, event_id
from bhype_core.api.principal import PrincipalDep
from bhype_core.api.task_stream import task_events
from bhype_core.db.task_models import Task, TaskBase, TaskLog, TaskLogBase
from bhype_core.tasks import service
from bhype_core.tasks.settings import task_settings


class TaskSubmit(BaseModel):
    """A task to queue: its kind and the kind's named arguments."""

    kind: str = Field(min_length=1, max_length=128, examples=["core.ping"])
    arguments: dict[str, Any] = Field(default_factory=dict, examples=[{"echo": "hello", "sleep": 2}])


class TaskPublic(TaskBase):
    """A task as the API shows it."""

    id: str


class TaskLogPublic(TaskLogBase):
    """One line of a task's log."""


class TaskDetail(TaskPublic):
    """A task with its log, oldest line first."""

    log: list[TaskLogPublic]


class TaskList(BaseModel):
    """Tasks, newest first."""

    tasks: list[TaskPublic]


def public(task: Task) -> TaskPublic:
    """The API view of a Task row (without the scheduler's internals)."""
    return TaskPublic.model_validate(task, from_attributes=True)


def detail(task: Task, lines: list[TaskLog]) -> TaskDetail:
    """The API view of a Task row with its log."""
    return TaskDetail(
        **public(task).model_dump(),
        log=[TaskLogPublic.model_validate(line, from_attributes=True) for line in lines],
    )


def get_visible_task(task_id: str, runtime: RuntimeDep, principal: PrincipalDep) -> Task:
    """The task named in the path, if the caller may see it (else 404, the same as unknown)."""
    return service.visible_task(runtime, principal, task_id)


VisibleTask = Annotated[Task, Depends(get_visible_task)]


def make_router() -> APIRouter:
    """Build the tasks router (a fresh one per app)."""
    router = APIRouter(prefix="/api/v1/tasks", tags=["tasks"])

    @router.post("", status_code=202, response_model=TaskPublic)
    def submit_task(body: TaskSubmit, runtime: RuntimeDep, principal: PrincipalDep) -> TaskPublic:
        """Queue a task for the caller and answer 202 with it; the worker runs it. A kind for
        admins only answers 403 to an operator; another user's object 404, like a missing one."""
        return public(service.submit(runtime, principal, body.kind, body.arguments))

    @router.get("", response_model=TaskList)
    def list_tasks(
        runtime: RuntimeDep,
        principal: PrincipalDep,
        user: str | None = None,
        state: str | None = None,
        kind: str | None = None,
        limit: Annotated[int, Query(ge=1, le=service.MAX_LIST)] = 100,
        offset: Annotated[Offset, Query()] = 0,
    ) -> TaskList:
        """The caller's tasks, newest first (admins: everyone's, or one ``user``'s)."""
        tasks = service.list_visible(
            runtime, principal, user=user, state=state, kind=kind, limit=limit, offset=offset
        )
        return TaskList(tasks=[public(task) for task in tasks])

    @router.get("/{task_id}", response_model=TaskDetail)
    def show_task(task: VisibleTask, runtime: RuntimeDep, principal: PrincipalDep) -> TaskDetail:
        """One task with its whole log."""
        found, lines = service.show(runtime, principal, task.id)
        return detail(found, lines)

    @router.get(
        "/{task_id}/stream",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}},
                         "description": "Server-Sent Events: log, progress, end"}},
    )
    async def stream_task(
        task: VisibleTask,
        runtime: RuntimeDep,
        request: Request,
        last_event_id: Annotated[str | None, Header()] = None,
    ) -> StreamingResponse:
        """Live progress and new log lines (Server-Sent Events) until the task ends.

        Events: ``log`` (one line; its ``id`` is the line's seq, so a reconnecting client's
        ``Last-Event-ID`` resumes after it), ``progress`` (state, percent, message) and a last
        ``end`` (the finished task).
        """
        after = event_id(last_event_id) or 0
        interval = task_settings(runtime).stream_interval
        events = task_events(runtime, task.id, after, interval, request.is_disconnected, public)
        return StreamingResponse(
            events, media_type="text/event-stream",
            headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
        )

    @router.post("/{task_id}/cancel", status_code=202, response_model=TaskPublic)
    def cancel_task(task: VisibleTask, runtime: RuntimeDep, principal: PrincipalDep) -> TaskPublic:
        """Cancel a task: a queued one never starts; a running one stops at its next safe point."""
        return public(service.cancel(runtime, principal, task.id))

    @router.post("/{task_id}/retry", status_code=202, response_model=TaskPublic)
    def retry_task(task: VisibleTask, runtime: RuntimeDep, principal: PrincipalDep) -> TaskPublic:
        """Queue a failed, cancelled or interrupted task again, as a new task (``retry_of``)."""
        return public(service.retry(runtime, principal, task.id))
    return router
