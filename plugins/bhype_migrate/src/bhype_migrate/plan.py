"""A move's plan (``migrate.plan``, and the first step of ``vm.move``): what is copied, how
many bytes, the expected offline window, and every reason the move cannot happen, found before
anything changes."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from bhype_core.plugin_api import (
    BhypeError,
    NotFound,
    StorageCapability,
    ValidationErrors,
    find_vm,
    is_running,
    open_datastore,
    session,
)
from bhype_migrate.destination import open_destination

MODES = ("cold", "warm")
TRANSPORTS = ("auto", "rsync", "zfs")
NOT_MOVED = ["snapshot schedules", "backup jobs and backup points"]


def move_options(vm: str, to: str, mode: str, transport: str, keep_source: bool, start: bool,
                 options: dict[str, Any]) -> str | None:
    """Check the arguments of a move; returns the copy's new name (``as``) or ``None``.

    :raises ValidationErrors: every bad argument, with its path.
    """
    errors = ValidationErrors()
    if mode not in MODES:
        errors.add("mode", f"must be one of {', '.join(MODES)}, not {mode!r}")
    if transport not in TRANSPORTS:
        errors.add("transport", f"must be one of {', '.join(TRANSPORTS)}, not {transport!r}")
    for name in options:
        if name not in ("as", "dirty_tracking"):
            errors.add(name, f"vm.move takes no argument {name!r}")
    if not isinstance(options.get("dirty_tracking", True), bool):
        errors.add("dirty_tracking", "must be true or false")
    new_name = options.get("as")
    if new_name is not None:
        if not isinstance(new_name, str) or not new_name:
            errors.add("as", "must be a VM name")
        elif not keep_source:
            errors.add("as", "a copy under a new name needs keep_source (a move keeps the name)")
        elif new_name == vm:
            errors.add("as", "the copy needs a name other than the source's")
    errors.raise_if_any()
    return new_name


def transfer_spec(spec: dict[str, Any], new_name: str | None) -> dict[str, Any]:
    """The spec the target registers: the same (UUID and MACs kept) for a move; for a copy,
    the new name with no UUID, MACs or VNC password (the target makes new ones)."""
    data = dict(spec)
    if new_name is None:
        return data
    data["name"] = new_name
    data.pop("uuid", None)
    data["nics"] = [{**nic, "mac": None} for nic in data.get("nics", [])]
    if isinstance(data.get("graphics"), dict):
        data["graphics"] = {**data["graphics"], "password": None}
    return data


def vm_files(runtime: Any, row: Any) -> tuple[Path, list[str], int, int]:
    """The VM's files: directory, relative names, apparent bytes and allocated bytes."""
    store = open_datastore(runtime, row.datastore)
    store.require(StorageCapability.EXPORT_FILES, "vm")
    exported = store.export_files(row.name)
    apparent = allocated = 0
    for name in exported.files:
        info = os.lstat(Path(exported.root) / name)
        apparent += info.st_size
        allocated += info.st_blocks * 512
    return Path(exported.root), list(exported.files), apparent, allocated


def locked_by(runtime: Any, name: str, own_task: str | None) -> str | None:
    """The id and kind of another running or queued task holding VM ``name``'s lock."""
    from sqlmodel import col, select

    from bhype_core.plugin_api import Task

    with session(runtime) as db:
        rows = db.exec(select(Task).where(col(Task.state).in_(("running", "queued")))).all()
    for task in rows:
        if task.id != own_task and f"vm:{name}" in (task.locks or []) and task.parent_id is None:
            return f"{task.kind} {task.id} ({task.state})"
    return None


def make_plan(context: Any, vm: str, to: str, mode: str = "cold", transport: str = "rsync",
              keep_source: bool = False, start: bool = False, new_name: str | None = None) -> dict[str, Any]:
    """The plan of moving ``vm`` to peer ``to``: ``problems`` (each ``[path, reason]``) is
    empty when the move can go ahead."""
    from bhype_migrate.settings import migrate_settings

    runtime = context.runtime
    row = find_vm(runtime, vm)
    if row is None:
        raise NotFound(f"no VM named {vm!r}")
    problems: list[list[str]] = []
    holder = locked_by(runtime, vm, context.task_id)
    if holder:
        problems.append(["vm", f"VM {vm} is locked by task {holder}"])
    from bhype_migrate.journal import open_move

    pending = open_move(runtime, str(row.uuid), exclude_task=context.task_id)
    if pending is not None:
        problems.append(["vm", f"VM {vm} is {pending.state} in move task {pending.task_id} to {pending.peer}"])
    spec = transfer_spec(row.spec, new_name)
    peer = open_destination(context, to)
    if peer.within_group and keep_source and not new_name:
        problems.append(["keep_source", f"inside a group VM {vm} has one record: a move to host {to} cannot keep "
                                        "the source (a copy can: --keep-source --as NEW)"])
    facts: dict[str, Any] = {}
    try:
        facts = peer.info()
    except BhypeError as exc:
        what = "host" if peer.within_group else "peer"
        problems.append(["to", f"{what} {to} refused or is unreachable: {exc.message}"])
    transport, zfs = choose_transport(runtime, row, transport, facts, problems)
    if transport == "zfs" and new_name:
        # The replicated dataset carries the source's identity properties (org.bhype:uuid …)
        # and snapshots: a copy under a new identity is not what zfs send -R makes.
        problems.append(["transport", "a copy under a new name (as) is not made with zfs send; use rsync"])
        zfs = None
    if zfs is not None:
        root, files, apparent, allocated = Path(zfs["source"]), [], zfs["bytes"], zfs["bytes"]
    elif transport == "rsync" and not [p for p in problems if p[0] == "transport"]:
        root, files, apparent, allocated = vm_files(runtime, row)
    else:
        root, files, apparent, allocated = Path("/nonexistent"), [], 0, 0
    fit: dict[str, Any] = {"problems": [], "datastore": None, "root": None}
    if facts:
        try:
            fit = peer.check(spec if new_name else row.spec, None, allocated, transport)
        except BhypeError as exc:
            what = "host" if peer.within_group else "peer"
            problems.append(["to", f"{what} {to} refused or is unreachable: {exc.message}"])
    problems += [[f"target.{path}", message] for path, message in fit["problems"]]
    running = is_running(runtime, vm)
    rate = migrate_settings(runtime).assumed_rate
    transfer_seconds = allocated / rate
    offline = transfer_seconds if mode == "cold" or not running else min(transfer_seconds, 10.0)
    return {
        "vm": vm, "uuid": str(row.uuid), "to": to, "mode": mode, "transport": transport,
        "keep_source": keep_source, "start": start, "as": new_name, "running": running,
        "files": files, "bytes": apparent, "bytes_allocated": allocated,
        "estimated_transfer_seconds": round(transfer_seconds, 1),
        "estimated_offline_seconds": round(offline, 1), "assumed_rate": rate,
        "target": {"host": facts.get("host"), "driver": facts.get("driver"), "datastore": fit.get("datastore"),
                   "root": fit.get("root"), "group": peer.within_group},
        "identity": "new UUID and MACs (a copy)" if new_name else "UUID and MACs kept",
        "not_moved": NOT_MOVED, "problems": problems, "source_dir": str(root),
        "zfs": {**zfs, "target": zfs_target(fit, spec["name"])} if zfs is not None else None,
    }


def choose_transport(runtime: Any, row: Any, transport: str, facts: dict[str, Any],
                     problems: list[list[str]]) -> tuple[str, dict[str, Any] | None]:
    """The transport a move uses (``auto``: zfs when the VM's datastore and the peer's default
    datastore are both ZFS with the same disk type, else rsync) and, for zfs, the source
    dataset and the bytes a full send would be (``zfs send -nvP`` of a temporary snapshot).
    A zfs transport that cannot work here is a problem (path ``transport``)."""
    from bhype_migrate.zfs_transfer import source_end

    store = open_datastore(runtime, row.datastore)
    target = next((d for d in facts.get("datastores", []) if d.get("name") == facts.get("default_datastore")), {})
    here_zfs = getattr(store, "name", "") == "zfs" and StorageCapability.SNAPSHOT in store.capabilities
    there_zfs = target.get("backend") == "zfs" and bool(target.get("dataset"))
    same_layout = getattr(getattr(store, "options", None), "disk_type", None) == target.get("disk_type")
    if transport == "auto":
        transport = "zfs" if here_zfs and there_zfs and same_layout else "rsync"
    if transport != "zfs":
        return transport, None
    if not here_zfs:
        problems.append(["transport", f"zfs send needs a ZFS datastore here; VM {row.name} is on "
                                      f"{getattr(store, 'name', '?')} storage (use rsync)"])
    elif facts and not there_zfs:
        problems.append(["transport", "zfs receive needs a ZFS datastore on the peer; its default datastore "
                                      f"{target.get('name')!r} is {target.get('backend')} storage (use rsync)"])
    elif facts and not same_layout:
        problems.append(["transport", f"the peer's ZFS datastore keeps disks as {target.get('disk_type')}, this "
                                      "one differently (use rsync)"])
    if problems and problems[-1][0] == "transport":
        return transport, None
    source = source_end(runtime, store, row.name)
    from bhype_migrate.zfs_transfer import plan_estimate

    return transport, {"source": source.dataset, "bytes": plan_estimate(source)}


def zfs_target(fit: dict[str, Any], name: str) -> str | None:
    """The dataset the peer receives the VM's tree as: ``<its datastore dataset>/vms/<name>``."""
    dataset = fit.get("dataset")
    return f"{dataset}/vms/{name}" if dataset else None


def plan_move(context: Any, vm: str, to: str, mode: str = "cold", transport: str = "rsync",
              keep_source: bool = False, start: bool = False, **options: Any) -> dict[str, Any]:
    """``migrate.plan``: the dry run of ``vm.move`` with the same arguments; changes nothing."""
    new_name = move_options(vm, to, mode, transport, keep_source, start, options)
    plan = make_plan(context, vm, to, mode, transport, keep_source, start, new_name)
    for path, reason in plan["problems"]:
        context.log(f"refused: {path}: {reason}", "warning")
    return plan

