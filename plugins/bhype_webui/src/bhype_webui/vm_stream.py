"""``/api/v1/webui/vms/stream``: VM state changes as Server-Sent Events, so the VM list and a
VM's page follow starts, stops and crashes without reloading."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import StreamingResponse
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from bhype_core.plugin_api import PrincipalDep, RuntimeDep, ValidationErrors, mark_unknown, unreachable_hosts
from bhype_webui import vm_query
from bhype_webui.live import live_response, sse


def parse_since(value: str | None, field: str = "since") -> datetime | None:
    """An ISO 8601 time with its zone, or ``None``.

    :raises ValidationErrors: not such a time (names ``field``).
    """
    if not value:
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise ValidationErrors([(field, "must be an ISO 8601 time such as 2025-01-31T12:00:00+00:00")]) from None
    if moment.tzinfo is None:
        raise ValidationErrors([(field, "must include its time zone (+00:00)")])
    return moment


def make_vm_stream_router() -> APIRouter:
    """The VM state stream route (a fresh router per app)."""
    router = APIRouter(tags=["webui"])

    @router.get(
        "/vms/stream",
        response_class=StreamingResponse,
        responses={200: {"content": {"text/event-stream": {}},
                         "description": "Server-Sent Events: vm (a changed VM), count, logout"}},
    )
    async def stream(
        request: Request,
        runtime: RuntimeDep,
        principal: PrincipalDep,
        since: Annotated[str | None, Query(description="ISO time: send VMs changed after it")] = None,
        name: Annotated[str | None, Query(max_length=63, description="follow this VM only")] = None,
        last_event_id: Annotated[str | None, Header()] = None,
    ) -> StreamingResponse:
        """State changes of the VMs you may see (or of VM ``name``): a ``vm`` event per changed
        VM, and a ``count`` event whenever the number of your VMs changes (created or destroyed).
        Without ``since`` the stream starts with changes from now on. When a group host turns
        unreachable (or back), a ``vm`` event for each of its VMs says ``unknown`` (or its real
        state again), as a reload would show."""
        start = parse_since(last_event_id, "Last-Event-ID") if last_event_id else parse_since(since)

        def latest() -> datetime | None:
            with Session(runtime.engine) as db:
                return vm_query.latest_change(db, principal)

        if start is None:
            start = await run_in_threadpool(latest)
        cursor: dict[str, object] = {"since": start, "count": None, "down": None}

        def poll() -> list[str]:
            down = set(unreachable_hosts(runtime))  # issue 22: a host's VMs show "unknown" while it is down
            flipped = down ^ cursor["down"] if isinstance(cursor["down"], set) else set()  # type: ignore[operator]
            cursor["down"] = down
            with Session(runtime.engine) as db:
                changed = vm_query.changes_since(db, principal, cursor["since"], name)  # type: ignore[arg-type]
                ids = {vm["id"] for vm in changed}
                turned = [vm for vm in vm_query.on_hosts(db, principal, flipped, name) if vm["id"] not in ids] \
                    if flipped else []
                count = None if name else vm_query.visible_count(db, principal)
            mark_unknown(runtime, [*changed, *turned])
            events = []
            for vm in changed:
                cursor["since"] = vm["updated"]
                stamp = vm["updated"].isoformat()
                events.append(sse("vm", {**vm, "updated": stamp}, stamp))  # type: ignore[arg-type]
            for vm in turned:  # no event id: its host changed, not its row (a reconnect starts at the rows)
                events.append(sse("vm", {**vm, "updated": vm["updated"].isoformat()}))
            if count is not None and count != cursor["count"]:
                if cursor["count"] is not None:
                    events.append(sse("count", {"total": count}))
                cursor["count"] = count
            return events

        return live_response(request, runtime, poll)

    return router
