"""Where a move goes: a paired *peer* (another bHype, reached through its API with an admin
token) or another *host of this group* (issue 22: same database, found in the host registry).

Both offer what the move needs: the host's facts, whether a VM fits there, the SSH/rsync data
path, and the receiving side's work (``migrate.receive`` / ``migrate.discard`` / starting the
VM). A peer runs that work through its API with the stored token; a group host runs it as
*remote sub-tasks* of the move, queued on that host's own queue through the shared database
(``context.submit(kind, arguments, host=…)``), so no token is involved and the move's locks
cover them.

A name is resolved as a group host first (registered in ``core_host`` and not this host),
then as a peer.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bhype_core.plugin_api import (
    REACHABLE,
    BhypeError,
    HostState,
    NotFound,
    SshTransport,
    TaskContext,
    ValidationErrors,
    group_hosts,
    local_host_name,
    ssh_destination,
)
from bhype_migrate import secrets
from bhype_migrate.peer_client import MIGRATE, Peer, find_peer
from bhype_migrate.settings import migrate_settings


def group_host(runtime: Any, name: str, source: str | None = None) -> HostState | None:
    """Host ``name`` of this group when it is registered and is not the source (default: this
    host)."""
    if name == (source or local_host_name(runtime)):
        return None
    return next((state for state in group_hosts(runtime) if state.host.name == name), None)


def check_destination(runtime: Any, name: str, source: str | None = None) -> str:
    """``"group"`` or ``"peer"``: what ``name`` is for a VM on host ``source`` (default: this
    host); the API checks before queueing a move.

    :raises ValidationErrors: at ``to``: the source itself, or neither a group host nor a peer.
    """
    if name == (source or local_host_name(runtime)):
        raise ValidationErrors([("to", f"the VM is on host {name!r} already")])
    if group_host(runtime, name, source) is not None:
        return "group"
    try:
        find_peer(runtime, name)
    except NotFound:
        raise ValidationErrors([("to", f"no group host or peer named {name!r} (`bhype hosts`, `bhype peer list`)")]) \
            from None
    return "peer"


@dataclass
class GroupHost:
    """Another host of the group as a move's destination (the registry, no token)."""

    context: TaskContext
    state: HostState
    key: Path
    known_hosts: Path
    ssh_user: str
    ssh_port: int
    within_group = True

    @classmethod
    def open(cls, context: TaskContext, state: HostState) -> GroupHost:
        """The destination ``state`` with the group's SSH settings (``[migrate] group_ssh_*``)."""
        settings = migrate_settings(context.runtime)
        if settings.group_ssh_key:
            key = Path(settings.group_ssh_key)
        else:
            key, _ = secrets.ssh_key(context)
        known = Path(settings.group_known_hosts) if settings.group_known_hosts else \
            secrets.migrate_dir(context.runtime) / "group.known_hosts"
        return cls(context, state, key, known, settings.group_ssh_user, settings.group_ssh_port)

    @property
    def name(self) -> str:
        return self.state.host.name

    @property
    def address(self) -> str:
        return self.state.host.address or self.name

    @property
    def transport(self) -> SshTransport:
        """How ssh and rsync reach the host: the group's key, only the host keys pinned for it."""
        return SshTransport(key_file=str(self.key), known_hosts=str(self.known_hosts), port=self.ssh_port)

    def ssh(self, *command: str) -> list[str]:
        """ssh(1) argv running ``command`` on the host as the group's SSH user."""
        return [*self.transport.argv(), f"{self.ssh_user}@{self.address}", "--", *command]

    def remote(self, path: str) -> str:
        """``user@address:path`` for rsync."""
        return ssh_destination(self.ssh_user, self.address, path)

    def info(self) -> dict[str, Any]:
        """The host's facts, from its registry row (no request to it).

        :raises BhypeError: the host is unreachable (its worker stopped heartbeating).
        """
        row = self.state.host
        if self.state.state != REACHABLE:
            raise BhypeError(f"host {self.name} is unreachable (no heartbeat for "
                             f"{self.state.age if self.state.age is not None else '?'} s)")
        capacity = row.capacity or {}
        return {"host": self.name, "platform": row.platform, "driver": row.hypervisor,
                "migrate_version": (row.versions or {}).get("bhype-migrate"),
                "default_datastore": capacity.get("default_datastore"),  # with each datastore's
                # layout (a ZFS dataset and disk type): what `--transport auto` picks zfs from
                "switches": capacity.get("switches", []), "templates": capacity.get("templates", []),
                "datastores": [{"name": name, **entry} for name, entry in (capacity.get("datastores") or {}).items()]}

    def _run(self, kind: str, arguments: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Run ``kind`` on the host as a remote sub-task of the move; its result.

        :raises BhypeError: it failed, or had not ended after ``timeout`` seconds.
        """
        if self.state.state != REACHABLE:
            raise BhypeError(f"host {self.name} is unreachable: {kind} cannot run there now")
        outcome = self.context.wait(self.context.submit(kind, arguments, host=self.name), timeout)[0]
        if not outcome.ok:
            error = outcome.error or {}
            said = error.get("message") if isinstance(error, dict) else str(error)
            raise BhypeError(f"{kind} on host {self.name} {outcome.state}: {said or 'no answer in time'}")
        return outcome.result if isinstance(outcome.result, dict) else {}

    def check(self, spec: dict[str, Any], datastore: str | None, size: int,
              transport: str = "rsync") -> dict[str, Any]:
        """Whether the VM fits there: ``migrate.check`` on the host (its datastores, space,
        switches and hypervisor, judged by itself)."""
        timeout = migrate_settings(self.context.runtime).peer_task_timeout
        arguments = {"spec": spec, "datastore": datastore, "size": size, "within_group": True}
        if transport != "rsync":
            arguments["transport"] = transport
        return self._run("migrate.check", arguments, timeout)

    def receive(self, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        """``migrate.receive`` there; its result."""
        return self._run("migrate.receive", body, timeout)

    def discard(self, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        """``migrate.discard`` there."""
        return self._run("migrate.discard", body, timeout)

    def start_vm(self, name: str, timeout: float) -> dict[str, Any]:
        """``vm.start`` of ``name`` there."""
        return self._run("vm.start", {"name": name}, timeout)


class PeerDestination:
    """A paired peer as a move's destination (its API with the stored admin token)."""

    within_group = False

    def __init__(self, peer: Peer) -> None:
        self.peer = peer
        self.name = peer.row.name
        self.transport = peer.transport
        self.ssh = peer.ssh
        self.remote = peer.remote
        self.info = peer.info
        self.check = peer.check

    def receive(self, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        return self.peer.run_task(f"{MIGRATE}/receive", body, timeout).get("result") or {}

    def discard(self, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        return self.peer.run_task(f"{MIGRATE}/discard", body, timeout).get("result") or {}

    def start_vm(self, name: str, timeout: float) -> dict[str, Any]:
        return self.peer.run_task(f"/api/v1/vms/{name}/start", None, timeout).get("result") or {}


Destination = GroupHost | PeerDestination


def open_destination(context: TaskContext, name: str) -> Destination:
    """Destination ``name``: a group host (registry) first, else a paired peer.

    :raises NotFound: neither.
    """
    state = group_host(context.runtime, name)
    if state is not None:
        return GroupHost.open(context, state)
    return PeerDestination(Peer.open(context, name))
