"""The ``/api/v1/migrate`` router: peers, moves and the receiving side of a move.

Everything is for admins. ``GET`` routes answer from the database (and, for ``/info`` and
``/check``, ``statvfs`` of the datastores): the API process runs no host command. Pairing,
testing, moving, receiving and discarding are tasks (``202`` + task id). A peer's token is
accepted in ``POST /peers`` and never shown again (the worker keeps it in a 0600 file).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field
from sqlmodel import col, select

from bhype_core.plugin_api import (
    AdminDep,
    NonNegativeInt64,
    NotFound,
    RuntimeDep,
    TaskAccepted,
    accept_task,
    find_vm,
    session,
)
from bhype_migrate import journal
from bhype_migrate.destination import check_destination
from bhype_migrate.facts import check_fit, host_facts
from bhype_migrate.models import MigratePeer
from bhype_migrate.plan import move_options
from bhype_migrate.secrets import check_peer_name


class PeerCreate(BaseModel):
    """Pair with another bHype host."""

    name: str = Field(examples=["b"])
    url: str = Field(examples=["https://b.example:8443"], description="the other host's bHype API")
    token: str = Field(description="an API token of an admin on the other host (kept by the worker, never shown)")
    ssh_host: str = Field("", description="host for the data path (default: the URL's host)")
    ssh_port: int = Field(22, ge=1, le=65535)
    ssh_user: str = Field("root", max_length=63)


class MoveRequest(BaseModel):
    """Move (or copy, with ``keep_source`` and ``as``) a VM to a peer."""

    model_config = {"populate_by_name": True}

    vm: str
    to: str = Field(description="a host of this group (`bhype hosts`) or a paired peer")
    mode: str = Field("cold", description="cold or warm")
    transport: str = Field("auto", description="auto (zfs when both ends are ZFS), rsync or zfs")
    keep_source: bool = False
    start: bool = False
    as_: str | None = Field(None, alias="as", description="a copy's new name (with keep_source)")
    dry_run: bool = False
    dirty_tracking: bool = Field(True, description="warm moves of QEMU VMs copy only the blocks the guest "
                                                   "wrote since the previous pass (false: rsync passes)")

    def arguments(self) -> dict[str, Any]:
        """The task arguments (checked: a bad one is a 422 before anything is queued)."""
        options: dict[str, Any] = {"as": self.as_} if self.as_ else {}
        if not self.dirty_tracking:
            options["dirty_tracking"] = False
        move_options(self.vm, self.to, self.mode, self.transport, self.keep_source, self.start, options)
        return {"vm": self.vm, "to": self.to, "mode": self.mode, "transport": self.transport,
                "keep_source": self.keep_source, "start": self.start, **options}


class FitCheck(BaseModel):
    """Would this VM fit here?"""

    spec: dict[str, Any]
    datastore: str | None = None
    size: NonNegativeInt64 = 0
    transport: str = Field("rsync", description="rsync (a directory datastore) or zfs (a ZFS one)")


class Receive(BaseModel):
    """Register a VM whose files a peer sent to ``incoming``."""

    incoming: str
    datastore: str
    spec: dict[str, Any]
    owner: str
    checksums: dict[str, str]
    snapshot: str = Field("", description="zfs transport: the last snapshot sent (the VM's dataset arrived)")
    guid: str = Field("", description="zfs transport: that snapshot's GUID on the sending host")


class Discard(BaseModel):
    """Remove what a move left here."""

    incoming: str
    datastore: str | None = None
    name: str = ""
    uuid: str = ""


def _peer(runtime: Any, name: str) -> MigratePeer:
    with session(runtime) as db:
        row = db.exec(select(MigratePeer).where(col(MigratePeer.name) == name)).first()
    if row is None:
        raise NotFound(f"no peer named {name!r}")
    return row


def make_router() -> APIRouter:
    """Build the plugin's router (a fresh one per app)."""
    router = APIRouter(tags=["migrate"])

    @router.get("/peers")
    def list_peers(runtime: RuntimeDep, principal: AdminDep) -> dict[str, Any]:
        """Every paired host (no tokens)."""
        with session(runtime) as db:
            rows = db.exec(select(MigratePeer).order_by(col(MigratePeer.name))).all()
        return {"peers": [row.public() for row in rows]}

    @router.get("/peers/{name}")
    def show_peer(name: str, runtime: RuntimeDep, principal: AdminDep) -> dict[str, Any]:
        """One peer, with its last test report (no token)."""
        return _peer(runtime, name).public()

    @router.post("/peers", status_code=202, response_model=TaskAccepted)
    def add_peer(body: PeerCreate, runtime: RuntimeDep, principal: AdminDep) -> TaskAccepted:
        """Queue ``migrate.peer_add``: check the token there, pin the SSH host key, keep the token."""
        check_peer_name(body.name)
        return accept_task(runtime, principal, "migrate.peer_add", body.model_dump())

    @router.post("/peers/{name}/test", status_code=202, response_model=TaskAccepted)
    def test_peer(name: str, runtime: RuntimeDep, principal: AdminDep, vm: str | None = None) -> TaskAccepted:
        """Queue ``migrate.peer_test``: API, SSH, hypervisor, space (and ``vm``'s needs) there."""
        _peer(runtime, name)
        return accept_task(runtime, principal, "migrate.peer_test", {"name": name, "vm": vm})

    @router.delete("/peers/{name}", status_code=202, response_model=TaskAccepted)
    def remove_peer(name: str, runtime: RuntimeDep, principal: AdminDep) -> TaskAccepted:
        """Queue ``migrate.peer_remove``: forget the peer, its token and pinned host key."""
        _peer(runtime, name)
        return accept_task(runtime, principal, "migrate.peer_remove", {"name": name})

    @router.post("/moves", status_code=202, response_model=TaskAccepted)
    def move(body: MoveRequest, runtime: RuntimeDep, principal: AdminDep) -> TaskAccepted:
        """Queue ``vm.move`` (or, with ``dry_run``, ``migrate.plan``: the plan, nothing changes)."""
        kind = "migrate.plan" if body.dry_run else "vm.move"
        arguments = body.arguments()
        row = find_vm(runtime, body.vm)
        check_destination(runtime, body.to, row.host or None if row else None)  # a group host, or a peer
        if row is None:
            raise NotFound(f"no VM named {body.vm!r}")
        # Both run on the VM's host (its files are read there): a group's API may be elsewhere.
        return accept_task(runtime, principal, kind, arguments, vm=body.vm, host=row.host or None)

    @router.get("/moves")
    def moves(runtime: RuntimeDep, principal: AdminDep) -> dict[str, Any]:
        """The latest moves from this host and the step each reached."""
        return {"moves": journal.moves(runtime)}

    @router.get("/info")
    def info(runtime: RuntimeDep, principal: AdminDep) -> dict[str, Any]:
        """This host as a peer sees it: hypervisor, datastores and free space, switches, templates."""
        return host_facts(runtime)

    @router.post("/check")
    def check(body: FitCheck, runtime: RuntimeDep, principal: AdminDep) -> dict[str, Any]:
        """Whether a VM with ``spec`` (``size`` bytes) could be received here, and why not."""
        return check_fit(runtime, body.spec, body.datastore, body.size, transport=body.transport)

    @router.post("/receive", status_code=202, response_model=TaskAccepted)
    def receive(body: Receive, runtime: RuntimeDep, principal: AdminDep) -> TaskAccepted:
        """Queue ``migrate.receive``: verify the sent files, put them in place, register the VM."""
        return accept_task(runtime, principal, "migrate.receive", body.model_dump(), vm=body.spec.get("name"))

    @router.post("/discard", status_code=202, response_model=TaskAccepted)
    def discard(body: Discard, runtime: RuntimeDep, principal: AdminDep) -> TaskAccepted:
        """Queue ``migrate.discard``: remove a move's incoming files (and the VM it registered)."""
        arguments = body.model_dump()
        if not arguments["datastore"]:
            from bhype_core.plugin_api import vm_settings

            arguments["datastore"] = vm_settings(runtime).default_datastore
        return accept_task(runtime, principal, "migrate.discard", arguments)

    return router
