"""The ISO library (upload with progress, fetch from a URL), the OS templates (with their cloud
images: in the library, or a button that fetches them) and the virtual switches. Changes go to
the API (``/api/v1/isos``, ``/api/v1/switches``, ``/api/v1/templates/{name}/image``) from the page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from sqlmodel import Session, col

from bhype_core.plugin_api import (
    PrincipalDep,
    RuntimeDep,
    SwitchPublic,
    iso_settings,
    list_isos,
    list_switches,
    open_datastore,
    template_catalog,
    vm_settings,
)
from bhype_webui.views.kit import PageKit
from bhype_webui.views.wizard import cloud_image_status, template_fields


def switch_users(db: Session) -> dict[str, list[str]]:
    """Switch name → the VMs with a NIC on it, in one pass over the VMs (not one per switch)."""
    from sqlalchemy import select

    from bhype_core.plugin_api import VM

    users: dict[str, list[str]] = {}
    for name, spec in db.execute(select(col(VM.name), col(VM.spec)).order_by(col(VM.name))).all():
        for switch in {nic.get("switch") for nic in (spec or {}).get("nics", []) if isinstance(nic, dict)}:
            if switch:
                users.setdefault(switch, []).append(name)
    return users


def add_routes(router: APIRouter, kit: PageKit) -> None:
    """``/ui/isos``, ``/ui/templates``, ``/ui/switches``."""

    @router.get("/isos", response_class=HTMLResponse)
    def isos(
        request: Request,
        runtime: RuntimeDep,
        principal: PrincipalDep,
        datastore: Annotated[str | None, Query(max_length=63)] = None,
    ) -> HTMLResponse:
        """The ISO library of one datastore."""
        settings = vm_settings(runtime)
        store = open_datastore(runtime, datastore)  # an unknown datastore is a 422 naming it
        return kit.render(
            request, "isos.html", "isos",
            isos=list_isos(store), datastore=datastore or settings.default_datastore,
            datastores=sorted(settings.datastores), max_size=iso_settings(runtime).max_size,
        )

    @router.get("/templates", response_class=HTMLResponse)
    def templates(request: Request, runtime: RuntimeDep, principal: PrincipalDep) -> HTMLResponse:
        """Every OS template a VM can be created from."""
        catalog = template_catalog(runtime)
        rows = [{**t.summary(), "fields": template_fields(t.summary()["defaults"]),
                 "image_status": cloud_image_status(runtime, t.name) if t.image else None} for t in catalog.list()]
        return kit.render(request, "templates.html", "templates", templates=rows,
                          errors=catalog.errors if principal.is_admin else {})

    @router.get("/switches", response_class=HTMLResponse)
    def switches(request: Request, runtime: RuntimeDep, principal: PrincipalDep) -> HTMLResponse:
        """Every virtual switch, with the VMs on it; admins create and remove them here."""
        with Session(runtime.engine) as db:
            users = switch_users(db)
            rows = [(SwitchPublic.model_validate(row, from_attributes=True), users.get(row.name, []))
                    for row in list_switches(db)]
        return kit.render(request, "switches.html", "switches", switches=rows)
