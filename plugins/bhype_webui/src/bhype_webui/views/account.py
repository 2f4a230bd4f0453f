"""The caller's own things: API tokens (created and revoked through ``/api/v1/auth/tokens``)
and notifications (marked read through ``/api/v1/webui/notifications/read``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from bhype_core.plugin_api import AuthenticatedDep, AuthServiceDep, PrincipalDep, RuntimeDep
from bhype_webui import notify_store
from bhype_webui.views.kit import PageKit
from bhype_webui.views.tasks import target_link


def notification_link(row: Any) -> str | None:
    """The page a notification is about: its task (``data.task_id``), else its subject
    (``vm:web1``, ``task:…``), if any."""
    task_id = (row.data or {}).get("task_id")
    if isinstance(task_id, str) and task_id:
        return f"/ui/tasks/{task_id}"
    subject = row.subject or ""
    if subject.startswith("task:"):
        return f"/ui/tasks/{subject.removeprefix('task:')}"
    return target_link(subject) if subject else None


def add_routes(router: APIRouter, kit: PageKit) -> None:
    """``/ui/tokens`` and ``/ui/notifications``."""

    @router.get("/tokens", response_class=HTMLResponse)
    def tokens(
        request: Request, service: AuthServiceDep, principal: PrincipalDep, auth: AuthenticatedDep
    ) -> HTMLResponse:
        """Your API tokens: create one (its secret is shown once), revoke one."""
        return kit.render(request, "tokens.html", "tokens", tokens=service.tokens.list(principal.name),
                          from_session=auth.session is not None)

    @router.get("/notifications", response_class=HTMLResponse)
    def notifications(request: Request, runtime: RuntimeDep, principal: PrincipalDep) -> HTMLResponse:
        """Your notifications, newest first, the unread ones marked."""
        viewer = notify_store.Viewer(principal.name, principal.is_admin)
        rows, marker = notify_store.list_notifications(runtime.engine, viewer, limit=notify_store.MAX_LIST)
        return kit.render(request, "notifications.html", "notifications", notifications=rows, last_read=marker,
                          link=notification_link)
