"""How the API and CLI show VMs: a summary per VM (list) and the detail with the full spec."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel

from bhype_core.vm.models import VM


class VMSummary(BaseModel):
    """One VM in a list: identity, owner, size and last known state."""

    id: int
    name: str
    uuid: str
    owner: str
    datastore: str
    state: str
    state_detail: str
    template: str | None
    os_type: str
    cpus: int
    memory: str
    disks: int
    description: str
    tags: list[str]
    created: datetime
    updated: datetime
    host: str = ""  # the group host that runs it (issue 22); its state is "unknown" while unreachable


class VMDetail(VMSummary):
    """One VM with its complete stored spec and the driver's last full answer (``status``:
    pid, exit status, consoles such as ``{"vnc": {"host", "port"}, "serial": {...}}``,
    restarts after guest reboots, recent exits)."""

    spec: dict[str, Any]
    status: dict[str, Any]


class VMList(BaseModel):
    """One page of VMs in the order asked for; ``next`` is the cursor of the following page
    (pass it as ``after``), ``null`` on the last page."""

    vms: list[VMSummary]
    next: str | None = None


def summary(row: VM | Any) -> VMSummary:
    """The list entry for ``row``, read from the stored spec without re-validating it (the list
    of 1,000 VMs must stay cheap; stored specs are complete and valid)."""
    spec = row.spec or {}
    cpus = spec.get("cpus")
    return VMSummary(
        id=row.id or 0,
        name=row.name,
        uuid=row.uuid,
        owner=row.owner,
        datastore=row.datastore,
        state=row.state,
        state_detail=row.state_detail,
        template=spec.get("template"),
        os_type=spec.get("os_type", "other"),
        cpus=cpus.get("count", 1) if isinstance(cpus, dict) else int(cpus or 1),
        memory=str(spec.get("memory", "")),
        disks=len(spec.get("disks") or []),
        description=spec.get("description", ""),
        tags=list(spec.get("tags") or []),
        host=getattr(row, "host", ""),
        created=row.created,
        updated=row.updated,
    )
