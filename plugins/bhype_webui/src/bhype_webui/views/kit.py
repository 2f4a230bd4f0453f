"""What every page shares: the Jinja2 environment, the page route class that turns a missing
login into a redirect to the login page, and the common page context."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlsplit

import jinja2
from fastapi import Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from bhype_core.plugin_api import BhypeError, SessionEnded, Unauthorized, csrf_cookie, end_browser_session, human_size

LOGIN_PATH = "/ui/login"
# The pages run only their own scripts (no inline script, no eval): htmx is configured to match.
SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}


def wants_html(request: Request) -> bool:
    """A browser navigating (not a script or an API client): it asks for HTML."""
    return "text/html" in request.headers.get("accept", "")


def is_htmx(request: Request) -> bool:
    """A request htmx made from a page (it swaps the answer into the page)."""
    return request.headers.get("hx-request") == "true"


def safe_next(value: str | None) -> str:
    """A local path to return to after logging in; anything else (another site, a scheme-relative
    ``//host``) becomes the dashboard, so the login page cannot be used to redirect elsewhere."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/ui/"
    parts = urlsplit(value)
    if parts.scheme or parts.netloc:
        return "/ui/"
    return value


def login_url(next_path: str, expired: bool = False) -> str:
    """The login page, returning to ``next_path`` afterwards."""
    url = f"{LOGIN_PATH}?next={quote(safe_next(next_path), safe='/')}"
    return url + "&expired=1" if expired else url


def fmt_time(value: Any) -> str:
    """A time for people: UTC, to the second (the page's script shows it in local time too)."""
    if not isinstance(value, datetime):
        return "" if value is None else str(value)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def fmt_duration(seconds: float) -> str:
    """A duration for people: ``0.4 s``, ``42 s``, ``3 min 05 s``, ``2 h 07 min``."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    whole = int(round(seconds))
    if whole < 60:
        return f"{whole} s"
    if whole < 3600:
        return f"{whole // 60} min {whole % 60:02d} s"
    return f"{whole // 3600} h {whole % 3600 // 60:02d} min"


def task_duration(task: Any, now: datetime | None = None) -> str:
    """How long ``task`` ran (started → finished), or has run so far; empty before it started."""
    started, finished = getattr(task, "started", None), getattr(task, "finished", None)
    if not isinstance(started, datetime):
        return ""
    end = finished if isinstance(finished, datetime) else (now or datetime.now(UTC))
    aware = [t if t.tzinfo else t.replace(tzinfo=UTC) for t in (started, end)]
    text = fmt_duration(max(0.0, (aware[1] - aware[0]).total_seconds()))
    return text if isinstance(finished, datetime) else f"{text} so far"


def make_environment() -> jinja2.Environment:
    """The Jinja2 environment for the templates shipped in ``bhype_webui/templates``."""
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("bhype_webui", "templates"),
        autoescape=jinja2.select_autoescape(["html"]),
        undefined=jinja2.StrictUndefined,  # a missing value is a bug, never an empty cell
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["time"] = fmt_time
    env.filters["size"] = lambda value: human_size(int(value)) if value is not None else ""
    env.filters["urlq"] = lambda value: quote(str(value), safe="")
    env.filters["duration"] = task_duration
    return env


class PageKit:
    """Renders pages; one per app (built by the pages router, never at import time)."""

    def __init__(self, env: jinja2.Environment | None = None) -> None:
        self.env = env or make_environment()
        self._own_loader = self.env.loader
        self._extended_for: object = None

    def environment(self, runtime: Any) -> jinja2.Environment:
        """The environment, its loader extended (once per plugin manager) with the template
        directories plugins registered (``bhype_webui_register_assets``: ``<name>/<file>``)."""
        if self._extended_for is not runtime.pm:
            from bhype_webui.extensions import ui_extensions

            prefixed = {
                assets.name: jinja2.FileSystemLoader(str(assets.template_dir))
                for assets in ui_extensions(runtime).assets if assets.template_dir is not None
            }
            loaders = [self._own_loader, jinja2.PrefixLoader(prefixed)] if prefixed else [self._own_loader]
            self.env.loader = jinja2.ChoiceLoader([loader for loader in loaders if loader is not None])
            self._extended_for = runtime.pm
        return self.env

    def fragment(self, request: Request, name: str, nav: str = "", /, **values: Any) -> Markup:
        """Template ``name`` rendered as a piece of a page (a dashboard panel, a VM tab) with the
        layout context plus ``values``; autoescaped inside, safe to insert as is."""
        env = self.environment(request.app.state.runtime)
        return Markup(env.get_template(name).render(**self.context(request, nav), **values))  # noqa: S704

    def context(self, request: Request, nav: str) -> dict[str, Any]:
        """What the layout needs: the caller, the title, the CSRF cookie's name, the unread count."""
        from bhype_webui import notify_store

        runtime = request.app.state.runtime
        principal = getattr(request.state, "principal", None)
        unread, latest = 0, 0
        if principal is not None:
            viewer = notify_store.Viewer(principal.name, principal.is_admin)
            unread = notify_store.unread_count(runtime.engine, viewer)
            latest = notify_store.latest_id(runtime.engine, viewer)
        from bhype_webui.extensions import ui_extensions

        return {
            "request": request,
            "title": runtime.settings.section("webui").title,
            "user": principal,
            "nav": nav,
            "nav_entries": ui_extensions(runtime).nav_entries(principal) if principal is not None else [],
            "csrf_cookie": csrf_cookie(runtime),
            "unread": unread,
            "notify_after": latest,
            "path": request.url.path,
        }

    def render(
        self, request: Request, name: str, nav: str = "", status_code: int = 200, /, **values: Any
    ) -> HTMLResponse:
        """The template ``name`` with the layout context plus ``values`` (call from a thread: the
        context reads the database). Positional parameters leave every keyword to the template."""
        env = self.environment(request.app.state.runtime)
        body = env.get_template(name).render(**self.context(request, nav), **values)
        return HTMLResponse(body, status_code=status_code, headers=SECURITY_HEADERS)

    async def error_page(self, request: Request, error: BhypeError) -> HTMLResponse:
        """A page that says what went wrong (another user's VM: "not found", as the API says)."""
        return await run_in_threadpool(
            self.render, request, "error.html", "", error.http_status, error=error, status=error.http_status
        )


class PageRoute(APIRoute):
    """A page route: when the core's guard finds no valid login, a browser is sent to the login
    page (and back afterwards) and an htmx request is told to go there (``HX-Redirect``);
    scripts and API clients keep the API's JSON 401. Other errors of a page a browser navigated
    to become an error page."""

    kit: PageKit

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        kit = self.kit

        async def page(request: Request) -> Response:
            try:
                return await handler(request)
            except Unauthorized as exc:
                if not (wants_html(request) or is_htmx(request)):
                    raise
                expired = isinstance(exc, SessionEnded)
                if is_htmx(request):
                    current = urlsplit(request.headers.get("hx-current-url", ""))
                    back = current.path + (f"?{current.query}" if current.query else "")
                    response: Response = Response(status_code=401, headers={"HX-Redirect": login_url(back, expired)})
                else:
                    back = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                    response = RedirectResponse(login_url(back, expired), status_code=303)
                if expired:
                    end_browser_session(response, request)
                return response
            except BhypeError as exc:
                if not wants_html(request) or is_htmx(request):
                    raise
                return await kit.error_page(request, exc)

        return page


def page_route_class(kit: PageKit) -> type[PageRoute]:
    """A :class:`PageRoute` bound to ``kit`` (one per app)."""
    return type("BoundPageRoute", (PageRoute,), {"kit": kit})
