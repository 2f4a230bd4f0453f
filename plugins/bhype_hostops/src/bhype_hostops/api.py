"""The ``/api/v1/hostops`` router: host services, the rsync daemon, vulnerability and patch findings.

The API process runs no host command: service states come from the worker's last probe (host
facts), everything that touches the host is a task (``202`` with its id). Admins only.
"""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from bhype_core.plugin_api import AdminDep, NotFound, RuntimeDep, TaskAccepted, accept_task, client_address
from bhype_hostops import findings_store, rsyncd
from bhype_hostops.check_task import CHECK_KIND
from bhype_hostops.rsyncd_conf import RsyncdConfig
from bhype_hostops.service_tasks import ACTIONS, PROBE_KIND, check_allowed, service_list
from bhype_hostops.session_guard import session_from


class ServiceAction(BaseModel):
    """Options of a service action."""

    confirm_session_loss: bool = Field(False, description="stop it even if this session depends on it")
    session_hint: Literal["ssh", "local"] | None = Field(
        None, description="the CLI says whether it runs in an SSH login (from SSH_CONNECTION)")


class Dismissal(BaseModel):
    """How long a finding stays quiet."""

    days: int | None = Field(None, ge=1, le=365, description="default [hostops] dismiss_days")


def make_router() -> APIRouter:
    """Build the plugin's router (a fresh one per app: no import-time globals)."""
    router = APIRouter(tags=["hostops"])

    @router.get("/services")
    def services(runtime: RuntimeDep, principal: AdminDep) -> dict[str, Any]:
        """The allow-listed services with their state as the worker last saw it."""
        return {"services": service_list(runtime)}

    @router.post("/services/refresh", status_code=202, response_model=TaskAccepted)
    def refresh(runtime: RuntimeDep, principal: AdminDep) -> TaskAccepted:
        """Query every allow-listed service now (task ``hostops.probe_services``)."""
        return accept_task(runtime, principal, PROBE_KIND, {})

    @router.post("/services/{name}/{action}", status_code=202, response_model=TaskAccepted)
    def act(name: str, action: str, request: Request, runtime: RuntimeDep, principal: AdminDep,
            body: ServiceAction | None = None, confirm_session_loss: bool = False) -> TaskAccepted:
        """Queue ``service.<action>`` (status, start, stop, restart, reload, enable, disable) on
        an allow-listed service. Stopping the service this session depends on (sshd over SSH,
        the API's front end) needs ``confirm_session_loss`` (in the body, or as a query
        parameter: the web UI's confirmation box adds it there)."""
        body = body or ServiceAction()
        confirmed = body.confirm_session_loss or confirm_session_loss
        if action not in ACTIONS:
            raise NotFound(f"no service action {action!r} (one of {', '.join(ACTIONS)})")
        check_allowed(runtime.settings.section("hostops"), name)
        session = session_from(client_address(request), body.session_hint)
        return accept_task(runtime, principal, f"service.{action}",
                           {"name": name, "session": session, "confirm_session_loss": confirmed})

    @router.get("/rsyncd")
    def rsyncd_config(runtime: RuntimeDep, principal: AdminDep) -> dict[str, Any]:
        """The rsync daemon's modules and user names (passwords are never shown)."""
        return rsyncd.public_config(runtime)

    @router.put("/rsyncd", status_code=202, response_model=TaskAccepted)
    def set_rsyncd(config: RsyncdConfig, runtime: RuntimeDep, principal: AdminDep) -> TaskAccepted:
        """Replace the daemon's modules and users (a user without a password keeps theirs) and
        queue ``hostops.rsyncd_apply`` to write the files and make the daemon use them."""
        rsyncd.save_config(runtime, config)
        return accept_task(runtime, principal, rsyncd.APPLY_KIND, {})

    @router.get("/findings")
    def findings(runtime: RuntimeDep, principal: AdminDep,
                 state: Literal["open", "resolved", "all"] = "open") -> dict[str, Any]:
        """Vulnerabilities and pending patches the checks found, with each check's raw output."""
        return {"findings": findings_store.list_findings(runtime, state), "last_run": findings_store.last_run(runtime)}

    @router.post("/check", status_code=202, response_model=TaskAccepted)
    def check(runtime: RuntimeDep, principal: AdminDep) -> TaskAccepted:
        """Run the vulnerability and patch checks now (task ``hostops.check``)."""
        return accept_task(runtime, principal, CHECK_KIND, {})

    @router.post("/findings/{finding_id}/dismiss")
    def dismiss(finding_id: int, runtime: RuntimeDep, principal: AdminDep,
                body: Dismissal | None = None) -> dict[str, Any]:
        """Silence a finding for a while; it pops again after that, or at once if it changes."""
        days = (body.days if body else None) or runtime.settings.section("hostops").dismiss_days
        return findings_store.dismiss(runtime, finding_id, days, principal.name)

    return router
