"""``/api/v1/webui/notifications``: the caller's notifications, the read marker, and the live
stream the pages turn into popups."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from bhype_core.plugin_api import NonNegativeInt64, Principal, PrincipalDep, RuntimeDep, event_id
from bhype_webui import notify_store
from bhype_webui.live import live_response, sse


class NotificationPublic(BaseModel):
    """One notification (a ``bhype_notify`` event addressed to you, or to every admin)."""

    id: int
    kind: str
    severity: str
    message: str
    subject: str | None
    data: dict[str, Any]
    time: str
    for_admins: bool = Field(description="addressed to every admin rather than to you alone")
    unread: bool


class NotificationList(BaseModel):
    """Your notifications, newest first; ``unread`` counts those above ``last_read_id``."""

    notifications: list[NotificationPublic]
    unread: int
    last_read_id: int


class MarkRead(BaseModel):
    """Mark everything up to ``up_to`` as read (null: everything you have)."""

    up_to: NonNegativeInt64 | None = None


class ReadMarker(BaseModel):
    """Your read marker after the change, and what is still unread."""

    last_read_id: int
    unread: int


def viewer(principal: Principal) -> notify_store.Viewer:
    """The store's view of the caller."""
    return notify_store.Viewer(principal.name, principal.is_admin)


def make_notifications_router() -> APIRouter:
    """The notification routes (a fresh router per app)."""
    router = APIRouter(tags=["webui"])

    @router.get("/notifications", response_model=NotificationList)
    def list_notifications(
        runtime: RuntimeDep,
        principal: PrincipalDep,
        unread: bool = False,
        limit: Annotated[int, Query(ge=1, le=notify_store.MAX_LIST)] = 50,
    ) -> NotificationList:
        """Your notifications, newest first (``unread=true``: only those not marked read)."""
        who = viewer(principal)
        rows, marker = notify_store.list_notifications(runtime.engine, who, unread_only=unread, limit=limit)
        items = [NotificationPublic(**notify_store.public(row), unread=(row.id or 0) > marker) for row in rows]
        return NotificationList(
            notifications=items, unread=notify_store.unread_count(runtime.engine, who), last_read_id=marker
        )

    @router.post("/notifications/read", response_model=ReadMarker)
    def mark_read(body: MarkRead, runtime: RuntimeDep, principal: PrincipalDep) -> ReadMarker:
        """Move your read marker forward (it never moves back)."""
        who = viewer(principal)
        marker = notify_store.mark_read(runtime.engine, who, body.up_to)
        return ReadMarker(last_read_id=marker, unread=notify_store.unread_count(runtime.engine, who))

    @router.get(
        "/notifications/stream",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}},
                         "description": "Server-Sent Events: notification (id = its id), logout"}},
    )
    async def stream(
        request: Request,
        runtime: RuntimeDep,
        principal: PrincipalDep,
        after: Annotated[NonNegativeInt64 | None, Query(description="send notifications above this id")] = None,
        last_event_id: Annotated[str | None, Header()] = None,
    ) -> StreamingResponse:
        """New notifications as they arrive (Server-Sent Events). A reconnecting browser's
        ``Last-Event-ID`` resumes after the last one it got; without ``after`` the stream starts
        with what arrives from now on."""
        who = viewer(principal)
        resume = event_id(last_event_id)
        if resume is not None:
            start = resume
        elif after is not None:
            start = after
        else:
            start = await run_in_threadpool(notify_store.latest_id, runtime.engine, who)
        cursor = {"after": start}

        def poll() -> list[str]:
            rows = notify_store.newer_than(runtime.engine, who, cursor["after"])
            if rows:
                cursor["after"] = rows[-1].id or cursor["after"]
            return [sse("notification", notify_store.public(row), row.id) for row in rows]

        return live_response(request, runtime, poll)

    return router
