"""The login page: a local account's name and password, checked by the core's login service
(PAM through the privileged daemon), then the same session cookies the API's login sets."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from bhype_core.plugin_api import (
    PUBLIC,
    AuthServiceDep,
    BhypeError,
    TooManyAttempts,
    ValidationErrors,
    password_login,
    read_login_form,
)
from bhype_webui.views.kit import PageKit, safe_next

EXPIRED = "Your session has ended. Log in again to continue."


def add_routes(router: APIRouter, kit: PageKit) -> None:
    """``GET``/``POST /ui/login`` (public: how one gets a session in the first place)."""

    def form(request: Request, *, next_path: str, message: str = "", username: str = "",
             status_code: int = 200, notice: str = "") -> HTMLResponse:
        return kit.render(request, "login.html", "login", status_code, next=next_path, message=message,
                          username=username, notice=notice)

    @router.get("/login", response_class=HTMLResponse, dependencies=[PUBLIC])
    async def login_page(
        request: Request,
        next: Annotated[str | None, Query(max_length=2000)] = None,
        expired: bool = False,
        logged_out: bool = False,
    ) -> HTMLResponse:
        """The login form."""
        notice = EXPIRED if expired else ("You have logged out." if logged_out else "")
        return await run_in_threadpool(form, request, next_path=safe_next(next), notice=notice)

    @router.post("/login", response_class=HTMLResponse, dependencies=[PUBLIC])
    async def login(
        request: Request, service: AuthServiceDep, next: Annotated[str | None, Query(max_length=2000)] = None
    ) -> Response:
        """Check the name and password; on success set the session cookies and go back to ``next``."""
        target = safe_next(next)
        username = ""
        try:
            username, password = await read_login_form(request)
            # PAM (through the daemon) and the stores block: password_login keeps them off the event loop.
            login = await password_login(request, service, username, password)
        except ValidationErrors as exc:
            message = "Enter your user name and password." if exc.errors else exc.message
            return await run_in_threadpool(form, request, next_path=target, message=message,
                                           username=username, status_code=422)
        except TooManyAttempts as exc:
            page = await run_in_threadpool(form, request, next_path=target, message=exc.message,
                                           username=username, status_code=429)
            page.headers["Retry-After"] = str(exc.retry_after)
            return page
        except BhypeError as exc:
            # One generic message for wrong name or password (the core's); a clear one for an
            # account without a bHype group or an unreachable authentication service.
            return await run_in_threadpool(form, request, next_path=target, message=exc.message,
                                           username=username, status_code=exc.http_status)
        response = RedirectResponse(target, status_code=303)
        login.set_cookies(response, request)
        return response
