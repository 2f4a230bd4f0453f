"""The web UI's pages under ``/ui``: server-rendered HTML (Jinja2) with a little JavaScript.

Pages read through the core's services with the caller's principal (the visibility rules are
the core's); every change is made by the page's script calling the JSON API with the CSRF
header, so validation, ownership and tasks are exactly the API's.
"""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import RedirectResponse

from bhype_core.plugin_api import PrincipalDep
from bhype_webui.views import account, dashboard, extension_views, library, login, tasks, vms, wizard
from bhype_webui.views.kit import PageKit, page_route_class


def make_views_router(kit: PageKit | None = None) -> APIRouter:
    """The page routes (a fresh router and template environment per app); mounted at ``/ui``."""
    kit = kit or PageKit()
    router = APIRouter(tags=["webui pages"], include_in_schema=False, route_class=page_route_class(kit))
    login.add_routes(router, kit)
    dashboard.add_routes(router, kit)
    wizard.add_routes(router, kit)  # /vms/new before /vms/{name}
    vms.add_routes(router, kit)
    library.add_routes(router, kit)
    tasks.add_routes(router, kit)
    account.add_routes(router, kit)
    extension_views.add_routes(router, kit)  # plugin pages: last, a catch-all under /ui
    return router


def make_root_router(kit: PageKit | None = None) -> APIRouter:
    """``/``: a browser opening the host's address lands on the dashboard (or the login page)."""
    router = APIRouter(include_in_schema=False, route_class=page_route_class(kit or PageKit()))

    @router.get("/")
    def root(principal: PrincipalDep) -> RedirectResponse:
        """Go to the dashboard."""
        return RedirectResponse("/ui/", status_code=307)

    return router


__all__ = ["PageKit", "make_root_router", "make_views_router"]
