"""The VM list (server-side filter, sort and pages; live states) and a VM's page."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from sqlalchemy import select
from sqlmodel import Session, col

from bhype_core.plugin_api import (
    LIVE_FIELDS,
    PrincipalDep,
    RuntimeDep,
    Task,
    get_vm,
    list_isos,
    mark_unknown,
    open_datastore,
    summary,
)
from bhype_webui import vm_query
from bhype_webui.views.dashboard import ordered_states
from bhype_webui.views.extension_views import render_vm_tab, vm_columns, vm_tabs
from bhype_webui.views.kit import PageKit, is_htmx

ACTIVE_STATES = ("starting", "running", "stopping")
TASK_HISTORY = 20


def iso_names(runtime: Any, datastore: str | None) -> list[str]:
    """The ISO library of ``datastore`` (empty when it cannot be read: a page must still open)."""
    try:
        return [info.name for info in list_isos(open_datastore(runtime, datastore))]
    except Exception:  # noqa: BLE001 - a broken datastore shows as "no ISOs", the API says why
        return []


def vm_tasks(db: Session, principal: Any, name: str) -> list[Task]:
    """The latest tasks on VM ``name`` that ``principal`` may see (``bhype_core.tasks.service.can_see``)."""
    query = select(Task).where(col(Task.target) == f"vm:{name}")
    if not principal.is_admin:
        query = query.where(col(Task.owner) == principal.name)
    query = query.order_by(col(Task.created).desc()).limit(TASK_HISTORY)
    return list(db.execute(query).scalars())


def add_routes(router: APIRouter, kit: PageKit) -> None:
    """``/ui/vms`` and ``/ui/vms/{name}``."""

    @router.get("/vms", response_class=HTMLResponse)
    def vm_list(request: Request, runtime: RuntimeDep, principal: PrincipalDep) -> HTMLResponse:
        """The VM list; htmx asks for the table alone when the filter changes."""
        page_size = runtime.settings.section("webui").vm_page_size
        flt = vm_query.VmFilter.from_query(request.query_params, page_size)
        with Session(runtime.engine) as db:
            page = vm_query.vm_page(db, principal, flt)
            since = vm_query.latest_change(db, principal)
            hosts = vm_query.hosts(db)
            mark_unknown(runtime, page.vms)  # VMs of an unreachable group host (issue 22)
            columns = vm_columns(request, runtime, principal, list(page.vms))
            if is_htmx(request) and request.headers.get("hx-target") == "vm-table":
                return kit.render(request, "_vm_table.html", "vms", page=page, since=since, columns=columns,
                                  hosts=hosts)
            counts = vm_query.state_counts(db, principal)
            owners = vm_query.owners(db, principal) if principal.is_admin else []
        return kit.render(request, "vms.html", "vms", page=page, since=since, owners=owners, hosts=hosts,
                          states=ordered_states(counts), columns=columns)

    @router.get("/vms/{name}", response_class=HTMLResponse)
    def vm_detail(
        name: str, request: Request, runtime: RuntimeDep, principal: PrincipalDep, tab: str | None = None
    ) -> HTMLResponse:
        """One VM: configuration, disks, NICs, consoles, task history, edit and destroy; with
        ``tab``, a tab another plugin added (``bhype_webui_register_vm_tabs``) instead."""
        with Session(runtime.engine) as db:
            row = get_vm(runtime, name, principal)  # another user's VM is "not found", as in the API
            history = vm_tasks(db, principal, name)
            since = vm_query.latest_change(db, principal)
        spec: dict[str, Any] = row.spec or {}
        vm = summary(row)
        mark_unknown(runtime, [vm])  # its group host is unreachable (issue 22)
        tab_html = render_vm_tab(kit, request, runtime, principal, row, tab, {"vm": vm, "spec": spec}) if tab else None
        return kit.render(
            request, "vm_detail.html", "vms",
            vm=vm, spec=spec, status=row.status or {}, tasks=history, since=since,
            active=row.state in ACTIVE_STATES, live_fields=LIVE_FIELDS,
            isos=iso_names(runtime, row.datastore), tabs=vm_tabs(runtime, principal), tab=tab, tab_html=tab_html,
        )
