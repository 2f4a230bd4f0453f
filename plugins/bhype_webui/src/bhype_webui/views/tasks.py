"""Tasks: mine (admins: everyone's, or one user's), and one task with its live log and progress.
Cancel and retry go to the API from the page; the log streams from ``/api/v1/tasks/{id}/stream``."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse

from bhype_core.plugin_api import (
    FINAL_STATES,
    RETRYABLE_STATES,
    NotFound,
    PrincipalDep,
    RuntimeDep,
    get_vm,
    list_tasks,
    show_task,
)
from bhype_core.plugin_api import TASK_STATES as STATES
from bhype_webui.views.kit import PageKit, is_htmx

PAGE = 50


def target_link(target: str) -> str | None:
    """The page of a task's target (``vm:web1`` → the VM's page), if it has one."""
    kind, _, name = target.partition(":")
    if kind == "vm" and name:
        return f"/ui/vms/{name}"
    if kind == "switch" and name:
        return "/ui/switches"
    if kind == "iso" and name:
        return "/ui/isos"
    return None


def created_vm(runtime: Any, principal: Any, task: Any) -> dict[str, Any] | None:
    """The VM a succeeded ``vm.create`` task made, if it still exists and ``principal`` may see
    it: its name, state and whether it has an ISO (the page then offers an install start)."""
    name = (task.arguments or {}).get("name")
    if task.kind != "vm.create" or task.state != "succeeded" or not isinstance(name, str):
        return None
    try:
        row = get_vm(runtime, name, principal)
    except NotFound:
        return None  # destroyed since, or not the caller's to see
    return {"name": row.name, "state": row.state, "cdrom": bool((row.spec or {}).get("cdrom"))}


def pretty(value: Any) -> str:
    """JSON for people (arguments, results, errors)."""
    return json.dumps(value, indent=2, sort_keys=True, default=str)


def add_routes(router: APIRouter, kit: PageKit) -> None:
    """``/ui/tasks`` and ``/ui/tasks/{task_id}``."""

    @router.get("/tasks", response_class=HTMLResponse)
    def task_list(
        request: Request,
        runtime: RuntimeDep,
        principal: PrincipalDep,
        scope: Annotated[str, Query(pattern="^(mine|all)$")] = "mine",
        state: Annotated[str | None, Query(max_length=16)] = None,
        user: Annotated[str | None, Query(max_length=255)] = None,
        page: Annotated[int, Query(ge=1, le=10_000)] = 1,
    ) -> HTMLResponse:
        """Your tasks, newest first; admins may see everyone's (``scope=all``) or one user's."""
        if not principal.is_admin:
            scope, user = "mine", None
        who = user or (principal.name if scope == "mine" else None)
        state = state if state in STATES else None
        rows = list_tasks(runtime, principal, user=who, state=state, limit=PAGE + 1,
                                    offset=(page - 1) * PAGE)
        values = dict(tasks=rows[:PAGE], more=len(rows) > PAGE, page=page, scope=scope, state=state or "",
                      user_filter=user or "", states=STATES, final=FINAL_STATES, link=target_link)
        template = "_task_table.html" if is_htmx(request) and request.headers.get("hx-target") == "task-table" \
            else "tasks.html"
        return kit.render(request, template, "tasks", **values)

    @router.get("/tasks/{task_id}", response_class=HTMLResponse)
    def task_detail(task_id: str, request: Request, runtime: RuntimeDep, principal: PrincipalDep) -> HTMLResponse:
        """One task: what it does, its progress, its whole log, its result or error."""
        task, lines = show_task(runtime, principal, task_id)  # another user's task: "not found"
        return kit.render(
            request, "task_detail.html", "tasks",
            task=task, log=lines, final=task.state in FINAL_STATES, retryable=task.state in RETRYABLE_STATES,
            target=target_link(task.target), pretty=pretty,
            last_seq=lines[-1].seq if lines else 0, created=created_vm(runtime, principal, task),
        )
