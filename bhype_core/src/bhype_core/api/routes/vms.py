"""``/api/v1/vms``: list, create, show, power actions, edit, destroy and show-command.

Every change is a task (202 + task id) that the worker runs under the lock ``vm:<name>``;
requests are validated first, so bad input is a 422 naming fields and nothing is queued.
Operators see and act on their own VMs only (another user's VM is "not found"); admins on all.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Query, Response
from pydantic import BaseModel, ConfigDict, Field
from sqlmodel import Session

from bhype_core.api.accepted import TaskAccepted, accept_task
from bhype_core.api.deps import RuntimeDep
from bhype_core.api.principal import Principal, PrincipalDep
from bhype_core.drivers.boot_plan import mode_errors
from bhype_core.errors import Conflict, ValidationErrors
from bhype_core.hosts.placement import place
from bhype_core.hosts.states import mark_unknown
from bhype_core.vm.context import build_create_spec
from bhype_core.vm.edit import LIVE_FIELDS, plan_edit
from bhype_core.vm.listing import DEFAULT_LIMIT, MAX_LIMIT, ListQuery, list_page, page_json
from bhype_core.vm.plan import show_command
from bhype_core.vm.public import VMDetail, VMList, summary
from bhype_core.vm.records import get_vm
from bhype_core.vm.services import open_datastore
from bhype_core.vm.settings import vm_settings

ACTIVE_STATES = ("starting", "running", "stopping")
VMSort = Literal["name", "state", "owner", "updated"]  # bhype_core.vm.listing.SORTS
# How long a graceful stop (stop, restart) waits before powering off.
StopTimeout = Annotated[float | None, Query(gt=0, le=3600, description="seconds; default vm.stop_timeout")]
SuspendTimeout = Annotated[float | None, Query(gt=0, le=7200, description="seconds the save may take; default 600")]
DiscardQuery = Annotated[bool, Query(description="a suspended VM: drop its saved state and boot afresh")]
StartModeQuery = Annotated[Literal["normal", "install", "rescue"],
                          Query(description="normal: boot the disk; install: the ISO once, then the disk; "
                                            "rescue: the ISO first on every boot")]
# Spec fields the API reports at the top level of the request (the rest live under "spec").
TOP_LEVEL = ("name", "template", "owner")


class VMCreate(BaseModel):
    """A new VM: a name, optionally a template, and spec fields (overriding the template's).

    Unknown top-level fields are refused (422), not dropped: a misspelt ``spec`` would
    otherwise create a VM without the disks the caller asked for."""

    model_config = ConfigDict(extra="forbid")

    name: str
    template: str | None = Field(None, description="template name (GET /api/v1/templates)")
    spec: dict[str, Any] = Field(default_factory=dict, description="spec fields; override the template's")
    datastore: str | None = Field(None, description="datastore; default vm.default_datastore")
    owner: str | None = Field(None, description="admins only: create the VM for this user")
    host: str | None = Field(None, max_length=63, description="group host to create it on; default: the "
                             "reachable host with the most free memory that has its switches, datastore and template")


class CommandPlan(BaseModel):
    """One host command a start would run."""

    argv: list[str]
    purpose: str
    line: str


class ShowCommand(BaseModel):
    """Every host command starting the VM would run on ``platform``; nothing was run."""

    name: str
    platform: str
    driver: str
    commands: list[CommandPlan]


def _spec_errors(exc: ValidationErrors) -> ValidationErrors:
    """Spec field paths as the request names them (``spec.disks.0.size``)."""
    errors = ValidationErrors()
    for error in exc.errors:
        root = error.path.split(".", 1)[0]
        errors.add(error.path if root in (*TOP_LEVEL, "datastore") or not error.path else f"spec.{error.path}",
                   error.message)
    return errors


def _admin_only(principal: Principal, spec: dict[str, Any], errors: ValidationErrors, prefix: str = "spec") -> None:
    if not principal.is_admin and spec.get("extra"):
        errors.add(f"{prefix}.extra", "raw hypervisor options are for admins only")


def _accepted(runtime: Any, principal: Principal, kind: str, arguments: dict[str, Any]) -> TaskAccepted:
    return accept_task(runtime, principal, kind, arguments, vm=arguments["name"])


def make_router() -> APIRouter:
    """Build the VMs router (a fresh one per app); mounted at ``/api/v1/vms``."""
    router = APIRouter(tags=["vms"])

    @router.get("", response_model=VMList)
    def list_all(
        runtime: RuntimeDep,
        principal: PrincipalDep,
        owner: Annotated[str | None, Query(max_length=255, description="only this owner's VMs")] = None,
        state: Annotated[str | None, Query(max_length=16, description="only VMs in this state")] = None,
        q: Annotated[str, Query(max_length=255, description="part of the name")] = "",
        host: Annotated[str | None, Query(max_length=63, description="only VMs on this group host")] = None,
        sort: Annotated[VMSort, Query(description="order (ties broken by name)")] = "name",
        limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="VMs per page")] = DEFAULT_LIMIT,
        after: Annotated[str | None, Query(max_length=1024, description="the previous page's 'next'")] = None,
    ) -> Response:
        """One page of the VMs you may see (admins: all) with their last known state; follow
        ``next`` (as ``after``) for the following page."""
        query = ListQuery(owner=owner, state=state, search=q, sort=sort, limit=limit, after=after, host=host)
        with runtime.engine.connect() as connection:
            page = list_page(connection, principal, query)
        mark_unknown(runtime, page.vms)  # VMs of unreachable hosts (issue 22)
        # Written by orjson straight from the rows (issue 15); the schema above documents it.
        return Response(page_json(page), media_type="application/json")

    @router.post("", status_code=202, response_model=TaskAccepted)
    def create(body: VMCreate, runtime: RuntimeDep, principal: PrincipalDep) -> TaskAccepted:
        """Create a VM from a template plus spec overrides (validated now, built by a task)."""
        errors = ValidationErrors()
        owner = body.owner or principal.name
        if owner != principal.name and not principal.is_admin:
            errors.add("owner", "only admins may create VMs for other users")
        _admin_only(principal, body.spec, errors)
        if "name" in body.spec and body.spec["name"] != body.name:
            errors.add("spec.name", "give the name once, as 'name'")
        errors.raise_if_any()
        store = open_datastore(runtime, body.datastore)
        try:
            with Session(runtime.engine) as db:
                spec = build_create_spec(runtime, db, body.template, {**body.spec, "name": body.name}, owner, store)
        except ValidationErrors as exc:
            raise _spec_errors(exc) from None
        host = place(runtime, spec, body.datastore or vm_settings(runtime).default_datastore, body.host)
        arguments = {"name": body.name, "template": body.template, "overrides": body.spec,
                     "owner": owner, "datastore": body.datastore}
        return accept_task(runtime, principal, "vm.create", arguments, vm=body.name, host=host)

    @router.get("/{name}", response_model=VMDetail)
    def show(name: str, runtime: RuntimeDep, principal: PrincipalDep) -> VMDetail:
        """One VM: its stored spec and last known state."""
        with Session(runtime.engine) as db:
            row = get_vm(db, name, principal)
        detail = VMDetail(**summary(row).model_dump(), spec=row.spec, status=row.status or {})
        mark_unknown(runtime, [detail])  # its host is unreachable: its state is unknown (issue 22)
        return detail

    def power(runtime: Any, principal: Principal, kind: str, name: str, timeout: float | None = None) -> TaskAccepted:
        """Check the caller may see VM ``name``, then queue power action ``kind`` for it."""
        with Session(runtime.engine) as db:
            get_vm(db, name, principal)
        arguments: dict[str, Any] = {"name": name}
        if timeout is not None:
            arguments["timeout"] = timeout
        return _accepted(runtime, principal, kind, arguments)

    @router.post("/{name}/start", status_code=202, response_model=TaskAccepted)
    def vm_start(
        name: str, runtime: RuntimeDep, principal: PrincipalDep, mode: StartModeQuery = "normal",
        discard_saved_state: DiscardQuery = False,
    ) -> TaskAccepted:
        """Start the VM (preflight first: every problem is named with its fix). `mode`: `normal`
        boots the disk, `install` boots the ISO once and then the disk, `rescue` the ISO first.
        A suspended VM resumes where it was, unless `discard_saved_state`."""
        if discard_saved_state:
            with Session(runtime.engine) as db:
                get_vm(db, name, principal)
            return _accepted(runtime, principal, "vm.start", {"name": name, "mode": mode, "discard_saved_state": True})
        if mode == "normal":
            return power(runtime, principal, "vm.start", name)
        with Session(runtime.engine) as db:
            row = get_vm(db, name, principal)
        ValidationErrors(mode_errors(row.spec_model(), mode)).raise_if_any()
        return _accepted(runtime, principal, "vm.start", {"name": name, "mode": mode})

    @router.post("/{name}/stop", status_code=202, response_model=TaskAccepted)
    def vm_stop(name: str, runtime: RuntimeDep, principal: PrincipalDep, timeout: StopTimeout = None) -> TaskAccepted:
        """Shut the VM down gracefully (ACPI); forced off after `timeout` seconds."""
        return power(runtime, principal, "vm.stop", name, timeout)

    @router.post("/{name}/restart", status_code=202, response_model=TaskAccepted)
    def vm_restart(
        name: str, runtime: RuntimeDep, principal: PrincipalDep, timeout: StopTimeout = None
    ) -> TaskAccepted:
        """Stop the VM gracefully (as stop), then start it again."""
        return power(runtime, principal, "vm.restart", name, timeout)

    @router.post("/{name}/suspend", status_code=202, response_model=TaskAccepted)
    def vm_suspend(
        name: str, runtime: RuntimeDep, principal: PrincipalDep, timeout: SuspendTimeout = None
    ) -> TaskAccepted:
        """Save the running VM's memory and devices to disk and stop it; its next start resumes
        it. Refused (`not_supported`) where the driver or the host's hypervisor cannot."""
        return power(runtime, principal, "vm.suspend", name, timeout)

    @router.post("/{name}/force-stop", status_code=202, response_model=TaskAccepted)
    def vm_force_stop(name: str, runtime: RuntimeDep, principal: PrincipalDep) -> TaskAccepted:
        """Power the VM off at once (no guest shutdown)."""
        return power(runtime, principal, "vm.force_stop", name)

    @router.patch("/{name}", status_code=202, response_model=TaskAccepted)
    def edit(
        name: str,
        runtime: RuntimeDep,
        principal: PrincipalDep,
        changes: Annotated[dict[str, Any], Body(description="JSON merge patch of spec fields (RFC 7396)")],
        allow_disk_removal: bool = False,
    ) -> TaskAccepted:
        """Change spec fields. Only description, tags, autostart and owner may change while the
        VM runs; everything else needs it stopped."""
        errors = ValidationErrors()
        _admin_only(principal, changes, errors, prefix="changes")
        with Session(runtime.engine) as db:
            row = get_vm(db, name, principal)
            if "owner" in changes and changes["owner"] != row.owner and not principal.is_admin:
                errors.add("owner", "only admins may give a VM to another user")
            errors.raise_if_any()
            try:
                _, changed = plan_edit(runtime, db, row, changes)
            except ValidationErrors as exc:
                raise ValidationErrors([(f"changes.{e.path}" if e.path else "changes", e.message)
                                        for e in exc.errors]) from None
        offline = [field for field in changed if field not in LIVE_FIELDS]
        if offline and row.state in ACTIVE_STATES:
            raise Conflict(
                f"VM {name} is {row.state}; changing {', '.join(offline)} needs it stopped "
                f"(only {', '.join(LIVE_FIELDS)} can change while it runs)"
            )
        arguments = {"name": name, "changes": changes, "allow_disk_removal": allow_disk_removal}
        return _accepted(runtime, principal, "vm.edit", arguments)

    @router.delete("/{name}", status_code=202, response_model=TaskAccepted)
    def destroy(name: str, runtime: RuntimeDep, principal: PrincipalDep, keep_disks: bool = False) -> TaskAccepted:
        """Destroy the stopped VM: disks (unless `keep_disks`), files and record."""
        with Session(runtime.engine) as db:
            row = get_vm(db, name, principal)
        if row.state in ACTIVE_STATES:
            raise Conflict(f"VM {name} is {row.state}: stop it before destroying it")
        return _accepted(runtime, principal, "vm.destroy", {"name": name, "keep_disks": keep_disks})

    @router.get("/{name}/show-command", response_model=ShowCommand)
    def show_commands(
        name: str,
        runtime: RuntimeDep,
        principal: PrincipalDep,
        platform: Literal["freebsd", "linux"] | None = None,
        mode: StartModeQuery = "normal",
    ) -> ShowCommand:
        """Every host command starting the VM (in `mode`) would run on `platform` (default: this
        host's), without running anything: loader, tap/bridge set-up, the hypervisor's full argv."""
        with Session(runtime.engine) as db:
            row = get_vm(db, name, principal)
        ValidationErrors(mode_errors(row.spec_model(), mode)).raise_if_any()
        return ShowCommand(**show_command(runtime, row, platform, mode))

    return router
