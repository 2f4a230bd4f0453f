"""The dashboard: panels (the host cards and other plugins'), VM counts by state, my recent tasks,
latest notifications."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from sqlmodel import Session

from bhype_core.plugin_api import PrincipalDep, RuntimeDep, list_tasks
from bhype_webui import notify_store, vm_query
from bhype_webui.views.account import notification_link
from bhype_webui.views.extension_views import render_panels
from bhype_webui.views.kit import PageKit
from bhype_webui.views.tasks import target_link

# The order states are shown in (a state not listed here comes after them).
STATE_ORDER = ("running", "starting", "stopping", "stopped", "crashed", "unknown")


def ordered_states(counts: dict[str, int]) -> list[tuple[str, int]]:
    """``counts`` as (state, count) pairs in display order, known states always present."""
    known = [(state, counts.get(state, 0)) for state in STATE_ORDER]
    return known + sorted((s, n) for s, n in counts.items() if s not in STATE_ORDER)


def add_routes(router: APIRouter, kit: PageKit) -> None:
    """``/ui/`` (and ``/ui`` redirecting there)."""

    @router.get("", include_in_schema=False)
    def bare(principal: PrincipalDep) -> RedirectResponse:
        """``/ui`` → ``/ui/``."""
        return RedirectResponse("/ui/", status_code=307)

    @router.get("/", response_class=HTMLResponse)
    def dashboard(request: Request, runtime: RuntimeDep, principal: PrincipalDep) -> HTMLResponse:
        """The dashboard."""
        with Session(runtime.engine) as db:
            counts = vm_query.state_counts(db, principal)
        recent = list_tasks(runtime, principal, user=principal.name, limit=8)
        viewer = notify_store.Viewer(principal.name, principal.is_admin)
        notes, marker = notify_store.list_notifications(runtime.engine, viewer, limit=6)
        return kit.render(
            request, "dashboard.html", "dashboard",
            panels=render_panels(kit, request, runtime, principal), states=ordered_states(counts),
            total=sum(counts.values()),
            tasks=recent, notifications=notes, last_read=marker, link=notification_link, task_link=target_link,
        )
