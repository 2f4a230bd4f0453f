"""The ``/ui`` router: the console pages and the static assets they load (no CDN).

Pages and assets are public to the core's guard (they hold no data): a page asks the API for
everything, with the session cookie and the CSRF token read from the readable CSRF cookie.
"""

from __future__ import annotations

import html
import mimetypes
from importlib import resources
from pathlib import Path
from urllib.parse import quote

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse

from bhype_core.plugin_api import PUBLIC, NotFound, RuntimeDep, csrf_cookie
from bhype_webui.tickets import ConsoleKind

PAGES = {"vnc": "console_vnc.html", "serial": "console_serial.html"}
# ES modules must come as JavaScript; some systems' mime tables lack .mjs or map .js oddly.
TYPES = {".js": "text/javascript", ".mjs": "text/javascript", ".css": "text/css", ".json": "application/json",
         ".svg": "image/svg+xml"}


def page_template(name: str) -> str:
    """A page template shipped in ``bhype_webui/pages``."""
    return resources.files("bhype_webui").joinpath("pages", name).read_text(encoding="utf-8")


def render(template: str, values: dict[str, str]) -> str:
    """Fill ``{{name}}`` placeholders with HTML-escaped ``values``."""
    for key, value in values.items():
        template = template.replace("{{" + key + "}}", html.escape(value, quote=True))
    return template


def static_file(root: Path, path: str) -> Path:
    """The file ``path`` under ``root``, refusing anything that resolves outside it.

    :raises NotFound: missing, a directory, or outside ``root``.
    """
    base = root.resolve()
    target = (base / path).resolve()
    if not target.is_relative_to(base) or not target.is_file():
        raise NotFound(f"no asset {path!r}")
    return target


def make_pages_router() -> APIRouter:
    """The page routes (a fresh router per app); mounted at ``/ui``."""
    router = APIRouter(tags=["webui pages"], include_in_schema=False)

    @router.get("/static/{path:path}", dependencies=[PUBLIC])
    def asset(path: str, runtime: RuntimeDep) -> FileResponse:
        """One static asset (plugin scripts and styles, and the npm-built vendor files)."""
        target = static_file(runtime.settings.section("webui").effective_assets_dir, path)
        media = TYPES.get(target.suffix) or mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        return FileResponse(target, media_type=media, headers={"Cache-Control": "no-cache"})

    @router.get("/plugins/{name}/static/{path:path}", dependencies=[PUBLIC])
    def plugin_asset(name: str, path: str, runtime: RuntimeDep) -> FileResponse:
        """A static file of another plugin (``bhype_webui_register_assets``), confined to its directory."""
        from bhype_webui.extensions import ui_extensions

        assets = ui_extensions(runtime).assets.get(name)
        if assets is None or assets.static_dir is None:
            raise NotFound(f"no assets of {name!r}")
        target = static_file(Path(assets.static_dir), path)
        media = TYPES.get(target.suffix) or mimetypes.guess_type(target.name)[0] or "application/octet-stream"
        return FileResponse(target, media_type=media, headers={"Cache-Control": "no-cache"})

    @router.get("/console/{kind}/{vm}", response_class=HTMLResponse, dependencies=[PUBLIC])
    def console_page(kind: ConsoleKind, vm: str, runtime: RuntimeDep) -> HTMLResponse:
        """The browser console of VM ``vm`` (noVNC for ``vnc``, xterm.js for ``serial``)."""
        settings = runtime.settings
        body = render(
            page_template(PAGES[kind]),
            {
                "vm": vm,
                "vm_url": quote(vm, safe=""),
                "title": settings.section("webui").title,
                "csrf_cookie": csrf_cookie(runtime),
            },
        )
        # The page runs only its own scripts; no inline script, no framing by other sites.
        headers = {
            "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
            "frame-ancestors 'none'",
            "X-Content-Type-Options": "nosniff",
        }
        return HTMLResponse(body, headers=headers)

    return router
