"""Talking to a peer's API as its admin (the stored token) and following its tasks."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bhype_core.plugin_api import NotFound, SshTransport, VmApi, session, ssh_destination
from bhype_migrate import secrets
from bhype_migrate.models import MigratePeer

MIGRATE = "/api/v1/migrate"


def find_peer(runtime: Any, name: str) -> MigratePeer:
    """Peer ``name``'s row; :class:`NotFound` when not paired."""
    from sqlmodel import select

    with session(runtime) as db:
        row = db.exec(select(MigratePeer).where(MigratePeer.name == name)).first()
    if row is None:
        raise NotFound(f"no peer named {name!r} (bhype peer add)")
    return row


@dataclass
class Peer:
    """A paired host as the worker reaches it: API (token from its private file) and SSH."""

    row: MigratePeer
    api: VmApi
    key: Path
    known_hosts: Path

    @classmethod
    def open(cls, context: Any, name: str) -> Peer:
        """Peer ``name`` with its token and bHype's SSH key (worker only)."""
        row = find_peer(context.runtime, name)
        token = secrets.load_token(context.runtime, name)
        key, _ = secrets.ssh_key(context)
        return cls(row, VmApi(row.url, token), key, secrets.known_hosts_path(context.runtime, name))

    @property
    def transport(self) -> SshTransport:
        """How ssh and rsync reach the peer: bHype's key, only the pinned host key."""
        return SshTransport(key_file=str(self.key), known_hosts=str(self.known_hosts), port=self.row.ssh_port)

    def ssh(self, *command: str) -> list[str]:
        """ssh(1) argv running ``command`` on the peer as its SSH user."""
        return [*self.transport.argv(), f"{self.row.ssh_user}@{self.row.ssh_host}", "--", *command]

    def remote(self, path: str) -> str:
        """``user@host:path`` for rsync."""
        return ssh_destination(self.row.ssh_user, self.row.ssh_host, path)

    def info(self) -> dict[str, Any]:
        """The peer's host facts."""
        return self.api.request("GET", f"{MIGRATE}/info")

    def check(self, spec: dict[str, Any], datastore: str | None, size: int, transport: str = "rsync") -> dict[str, Any]:
        """Whether the VM fits on the peer (its own checks, for ``transport``)."""
        body = {"spec": spec, "datastore": datastore, "size": size}
        if transport != "rsync":  # a peer of an older version knows only rsync
            body["transport"] = transport
        return self.api.request("POST", f"{MIGRATE}/check", body)

    def run_task(self, path: str, body: Any, timeout: float = 3600.0) -> dict[str, Any]:
        """POST ``path`` (a 202 route) and wait for the peer's task; its final row.

        :raises TaskFailed: the peer's task failed (its message).
        """
        accepted = self.api.request("POST", path, body)
        return self.api.wait_task(accepted["task_id"], timeout=timeout)
