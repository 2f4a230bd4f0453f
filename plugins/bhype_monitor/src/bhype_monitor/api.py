"""The ``/api/v1/monitor`` router: the host's probed status, live values, series and "top".

Visibility as for VMs everywhere: an operator sees only their own VMs (another user's VM is
"not found", never "forbidden"); the host's values are shown to every signed-in user, as
``/status`` always was. The API process runs no host command: it reads the live snapshot the
worker's sampler published and the history table.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from fastapi import APIRouter, Query

from bhype_core.plugin_api import (
    AdminDep,
    NotFound,
    PrincipalDep,
    RuntimeDep,
    TaskAccepted,
    ValidationErrors,
    accept_task,
    get_vm,
    group_hosts,
    is_admin,
    list_vms,
    local_host_name,
)
from bhype_monitor import live
from bhype_monitor.sampler import host_series as series_of_host
from bhype_monitor.sampler import make_history, vm_series
from bhype_monitor.status import PROBE_KIND, MonitorStatus, monitor_status

TOP_KEYS = {
    "cpu": ("cpu_percent",),
    "memory": ("mem_rss",),
    "disk": ("disk_read_bps", "disk_write_bps"),
    "network": ("net_rx_bps", "net_tx_bps"),
}
DEFAULT_RANGE = 3600


def visible_vms(runtime: Any, principal: Any) -> dict[str, Any]:
    """The VMs ``principal`` may see, by UUID (one query)."""
    return {row.uuid: row for row in list_vms(runtime, principal)}


def current(runtime: Any, principal: Any, host: str | None = None) -> dict[str, Any]:
    """The live snapshot of ``host`` (``None``: this one) cut to what ``principal`` may see
    (``vms`` by name; the VMs not sampled are added with their recorded state)."""
    snapshot = live.get(runtime, host)
    if snapshot is None:
        return {"at": None, "age_seconds": None, "host": None, "pools": [], "vms": {},
                "message": "no sample yet: the worker's monitor sampler has not run (is the worker up?)"}
    allowed = set(visible_vms(runtime, principal)) if not is_admin(principal) else None
    vms = {vm["name"]: {**vm, "uuid": uuid} for uuid, vm in snapshot.get("vms", {}).items()
           if allowed is None or uuid in allowed}
    for row in live.idle_vms(runtime, host or local_host_name(runtime), snapshot):
        if allowed is None or row.uuid in allowed:
            vms[row.name] = {"name": row.name, "owner": row.owner, "state": row.state, "metrics": {}, "uuid": row.uuid}
    return {"at": snapshot["at"], "age_seconds": round(max(0.0, time.time() - snapshot["at"]), 1),
            "interval": snapshot.get("interval"), "host": snapshot.get("host"),
            "pools": snapshot.get("pools", []), "vms": vms, "message": None}


def top(snapshot_vms: dict[str, Any], by: str, limit: int) -> list[dict[str, Any]]:
    """VMs ranked by ``by`` (the sum of its metrics), highest first."""
    keys = TOP_KEYS[by]
    rows = []
    for name, vm in snapshot_vms.items():
        metrics = vm.get("metrics", {})
        if not metrics:
            continue
        rows.append({"name": name, "owner": vm.get("owner"), "state": vm.get("state"),
                     "value": sum(metrics.get(k) or 0 for k in keys),
                     "cpu_percent": metrics.get("cpu_percent"), "mem_rss": metrics.get("mem_rss"),
                     "disk_bps": (metrics.get("disk_read_bps") or 0) + (metrics.get("disk_write_bps") or 0),
                     "net_bps": (metrics.get("net_rx_bps") or 0) + (metrics.get("net_tx_bps") or 0)})
    rows.sort(key=lambda row: row["value"], reverse=True)
    return rows[:limit]


def read_series(runtime: Any, series: str, start: float | None, end: float | None, step: int | None,
                metrics: str | None) -> dict[str, Any]:
    """A series between ``start`` and ``end`` (default: the last hour); bad ranges are a 422."""
    end = time.time() if end is None else end
    start = end - DEFAULT_RANGE if start is None else start
    if end < start:
        errors = ValidationErrors()
        errors.add("to", "'to' must not be before 'from'")
        errors.raise_if_any()
    names = [m for m in metrics.split(",") if m] if metrics else None
    return make_history(runtime).series(series, start, end, step, names)


def make_router() -> APIRouter:
    """Build the plugin's router (a fresh one per app: no import-time globals)."""
    router = APIRouter(tags=["monitor"])

    @router.get("/status", response_model=MonitorStatus)
    def status(runtime: RuntimeDep, principal: PrincipalDep) -> MonitorStatus:
        """The host's load average and memory as the worker last read them (``probed_at``,
        ``age_seconds``), and the configured history retention; the API process runs no host
        command."""
        return monitor_status(runtime)

    @router.post("/status/refresh", status_code=202, response_model=TaskAccepted)
    def refresh_status(runtime: RuntimeDep, principal: AdminDep) -> TaskAccepted:
        """Queue ``monitor.probe``: the worker reads the host's load and memory now."""
        return accept_task(runtime, principal, PROBE_KIND, {})

    def known_host(runtime: Any, host: str | None) -> str:
        name = host or local_host_name(runtime)
        if host and host != local_host_name(runtime) and all(s.host.name != host for s in group_hosts(runtime)):
            raise NotFound(f"no host named {host!r} in this group")
        return name

    @router.get("/current")
    def current_values(runtime: RuntimeDep, principal: PrincipalDep,
                       host: str | None = Query(None, max_length=63,
                                                description="a group host (`bhype hosts`); default: this one")
                       ) -> dict[str, Any]:
        """The newest sample of a host (each group host samples its own): host (CPU total and
        per core, load, memory, swap, disks, NICs, uptime), ZFS pools, and the VMs the caller
        may see (by name)."""
        return current(runtime, principal, known_host(runtime, host))

    @router.get("/top")
    def top_vms(runtime: RuntimeDep, principal: PrincipalDep,
                by: Literal["cpu", "memory", "disk", "network"] = "cpu",
                limit: int = Query(20, ge=1, le=1000)) -> dict[str, Any]:
        """The caller's visible VMs ranked by CPU %, resident memory, disk or network bytes/s."""
        now = current(runtime, principal)
        return {"at": now["at"], "by": by, "vms": top(now["vms"], by, limit)}

    @router.get("/host/series")
    def host_series(runtime: RuntimeDep, principal: PrincipalDep,
                    start: float | None = Query(None, alias="from", description="epoch seconds (default: an hour ago)"),
                    end: float | None = Query(None, alias="to", description="epoch seconds (default: now)"),
                    step: int | None = Query(None, ge=1, le=86400 * 31),
                    metrics: str | None = Query(None, description="comma-separated metric names"),
                    host: str | None = Query(None, max_length=63,
                                             description="a group host (`bhype hosts`); default: this one")
                    ) -> dict[str, Any]:
        """A host's history: ``t`` (bucket starts) and per metric ``min``/``avg``/``max``; in a
        group, of host ``host`` (each host records its own), else of the host answering."""
        name = known_host(runtime, host)
        return {**read_series(runtime, series_of_host(name), start, end, step, metrics), "host": name}

    @router.get("/vms/{name}")
    def vm_current(name: str, runtime: RuntimeDep, principal: PrincipalDep) -> dict[str, Any]:
        """One VM's newest values (404 for a VM the caller may not see)."""
        vm = get_vm(runtime, name, principal)
        snapshot = live.get(runtime, vm.host or None) or {}  # its host's sampler measures it
        entry = snapshot.get("vms", {}).get(vm.uuid)
        if entry is None:
            return {"name": vm.name, "uuid": vm.uuid, "state": vm.state, "metrics": {}, "nics": {}, "at": None}
        return {**entry, "uuid": vm.uuid, "at": snapshot.get("at")}

    @router.get("/vms/{name}/series")
    def vm_history(name: str, runtime: RuntimeDep, principal: PrincipalDep,
                   start: float | None = Query(None, alias="from", description="epoch seconds (default: an hour ago)"),
                   end: float | None = Query(None, alias="to", description="epoch seconds (default: now)"),
                   step: int | None = Query(None, ge=1, le=86400 * 31),
                   metrics: str | None = Query(None, description="comma-separated metric names")) -> dict[str, Any]:
        """One VM's history (by its UUID, so it survives a rename); 404 for another's VM."""
        vm = get_vm(runtime, name, principal)
        body = read_series(runtime, vm_series(vm.uuid), start, end, step, metrics)
        return {**body, "name": vm.name}

    return router

