"""Which host runs a task: the owner of the VM or switch it locks, else the host it was asked on."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlmodel import col

from bhype_core.errors import ValidationErrors
from bhype_core.hosts.models import Host
from bhype_core.hosts.settings import local_host_name


def owner_of(runtime: Any, locks: list[str]) -> str | None:
    """The host of the first existing VM (``vm:<name>``) or switch (``switch:<name>``) in
    ``locks``; ``None`` when none exists yet (a create) or the row predates the group."""
    with runtime.engine.connect() as connection:
        return _owner_of(connection, locks)


def _owner_of(connection: Any, locks: list[str]) -> str | None:
    from bhype_core.network.models import Switch
    from bhype_core.vm.models import VM

    for lock in locks:
        prefix, _, name = lock.partition(":")
        model = {"vm": VM, "switch": Switch}.get(prefix)
        if model is None or not name:
            continue
        host = connection.execute(select(col(model.host)).where(col(model.name) == name)).scalar()
        if host:
            return host
    return None


def task_host(runtime: Any, kind: str, locks: list[str], chosen: str | None = None) -> str:
    """The host whose worker runs a new task of ``kind``: ``chosen`` (placement), else the
    owner of what it locks, else this process's host.

    :raises ValidationErrors: at ``host`` when that host is registered but its worker does not
        know ``kind`` (its bHype or plugin versions differ from this one's).
    """
    with runtime.engine.connect() as connection:  # one connection for both reads (issue 15)
        host = chosen or _owner_of(connection, locks) or local_host_name(runtime)
        known = connection.execute(select(col(Host.task_kinds)).where(col(Host.name) == host)).scalar()
    if known is not None and kind not in known:
        raise ValidationErrors([("host", f"host {host!r} does not know task kind {kind!r}: its bHype or plugin "
                                         "versions differ from the group's (see `bhype hosts`)")])
    return host
