"""The one answer to "your task is queued" (``202``, :class:`TaskAccepted`) and the helper that
submits a task for the calling user and builds it."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

if TYPE_CHECKING:
    from bhype_core.api.principal import Principal
    from bhype_core.runtime import Runtime


class TaskAccepted(BaseModel):
    """The task that will do the work: follow it (and read its result) under
    ``/api/v1/tasks/{task_id}``. ``vm`` names the VM it acts on, when it acts on one."""

    task_id: str
    kind: str
    vm: str | None = None


def accept_task(
    runtime: Runtime, principal: Principal, kind: str, arguments: dict[str, Any], *, vm: str | None = None,
    host: str | None = None,
) -> TaskAccepted:
    """Queue task ``kind`` with ``arguments`` for ``principal`` (the per-user task queue) and
    answer what a ``202`` route returns. Declare the route with ``status_code=202,
    response_model=TaskAccepted``.

    :raises ValidationErrors: the kind is unknown or the arguments do not fit it (nothing is
        queued).
    """
    from bhype_core.tasks import service

    task = service.submit(runtime, principal, kind, arguments, host=host)  # host: placement (issue 22)
    return TaskAccepted(task_id=task.id, kind=kind, vm=vm)
