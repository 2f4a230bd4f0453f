"""What other plugins add through the web UI's hooks, rendered: their pages (``/ui/<path>``),
dashboard panels and VM tabs (:mod:`bhype_webui.hookspecs`)."""

from __future__ import annotations

import logging
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse
from markupsafe import Markup

from bhype_core.plugin_api import NotFound, PrincipalDep, RuntimeDep
from bhype_webui.extensions import UiRequest, ui_extensions
from bhype_webui.views.kit import PageKit

log = logging.getLogger("bhype.webui")


def _values(record: Any, ui: UiRequest) -> dict[str, Any]:
    """What a record's ``context`` function returns for this request (nothing without one)."""
    return dict(record.context(ui)) if record.context is not None else {}


def render_panels(kit: PageKit, request: Request, runtime: Any, principal: Any) -> list[Markup]:
    """Every dashboard panel ``principal`` may see, rendered, in order."""
    ui = UiRequest(request, runtime, principal)
    return [
        kit.fragment(request, panel.template, "dashboard", panel=panel, **_values(panel, ui))
        for panel in ui_extensions(runtime).ordered_panels(principal)
    ]


def vm_columns(request: Request, runtime: Any, principal: Any, rows: list[Any]) -> list[tuple[Any, dict[str, str]]]:
    """The extra VM-list columns ``principal`` may see, each with its cells for ``rows`` (a
    column whose function fails shows empty cells: the list must still open)."""
    ui = UiRequest(request, runtime, principal)
    columns = []
    for column in ui_extensions(runtime).ordered_columns(principal):
        try:
            cells = {str(k): str(v) for k, v in column.values(ui, rows).items()}
        except Exception:  # noqa: BLE001 - another plugin's bug must not break the VM list
            log.exception("VM list column %s failed", column.name)
            cells = {}
        columns.append((column, cells))
    return columns


def vm_tabs(runtime: Any, principal: Any) -> list[Any]:
    """The VM-page tabs ``principal`` may see, in order."""
    return ui_extensions(runtime).ordered_tabs(principal)


def render_vm_tab(kit: PageKit, request: Request, runtime: Any, principal: Any, row: Any, name: str,
                  values: dict[str, Any]) -> Markup:
    """Tab ``name`` of the VM page for ``row`` (a VM the caller may see).

    :raises NotFound: no such tab (or an admin-only tab for an operator).
    """
    tab = next((tab for tab in vm_tabs(runtime, principal) if tab.name == name), None)
    if tab is None:
        raise NotFound(f"no tab {name!r} on the VM page")
    return kit.fragment(request, tab.template, "vms", tab=tab, **values,
                        **_values(tab, UiRequest(request, runtime, principal, row)))


def add_routes(router: APIRouter, kit: PageKit) -> None:
    """``/ui/<path>`` for every page a plugin registered; added last, so the web UI's own
    routes always win (their first segments are reserved at start-up anyway)."""

    @router.get("/{path:path}", response_class=HTMLResponse)
    def plugin_page(path: str, request: Request, runtime: RuntimeDep, principal: PrincipalDep) -> HTMLResponse:
        """A page another plugin added (``bhype_webui_register_pages``)."""
        extensions = ui_extensions(runtime)
        page = next((page for page in extensions.pages if page.path == path), None)
        if page is None or (page.admin_only and not principal.is_admin):
            raise NotFound(f"no page /ui/{path}")
        values = _values(page, UiRequest(request, runtime, principal))
        return kit.render(request, page.template, page.name, page=page, **values)
