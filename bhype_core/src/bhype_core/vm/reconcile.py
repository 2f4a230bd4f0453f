"""Reconciliation: refresh every VM's cached state from what the hypervisor really runs, and
unplug the taps of VMs that stopped without a stop task (a crash, a guest power-off).

Runs as the periodic job ``vm.reconcile`` (every minute) and as a task an admin may submit,
so the list is right again after a worker restart, a guest that powered itself off, or a crash
while no worker was looking. VMs keep running through all of that: their supervisors are not
children of the worker.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Collection
from typing import Any

import orjson
from sqlalchemy import Text, func, or_, type_coerce
from sqlmodel import col, select

from bhype_core.auth.principal import SYSTEM_NAME
from bhype_core.db.session import session
from bhype_core.drivers.state import VMFiles
from bhype_core.events import Event
from bhype_core.hosts.settings import local_host_name
from bhype_core.spec import instance_name, validate_spec
from bhype_core.vm.access import is_admin_user
from bhype_core.vm.models import VM
from bhype_core.vm.nics import release_nics
from bhype_core.vm.power import cached_status, status_detail
from bhype_core.vm.records import set_state
from bhype_core.vm.services import active_driver, open_datastore


def reconcile(context: Any) -> dict[str, Any]:
    """Ask the driver about every VM the task's user may see (the periodic job: all) and store
    the answers.

    :returns: ``checked`` (count), ``changed`` (``{name: "old -> new"}``) and, for admins and
        the periodic job, ``unknown`` (bHype instance names the hypervisor runs that no VM row
        claims).
    """
    everything = is_admin_user(context.runtime, context.user)
    # The minutely job (bHype itself) spreads quiet VMs over passes; a person asking looks at all.
    periodic = context.user is None or context.user == SYSTEM_NAME
    return refresh_states(context.runtime, context.log, owner=None if everything else context.user,
                          list_unknown=everything, spread=periodic)


def refresh_states(
    runtime: Any,
    log: Callable[..., Any],
    *,
    owner: str | None = None,
    names: Collection[str] | None = None,
    list_unknown: bool = False,
    spread: bool = False,
) -> dict[str, Any]:
    """Ask the driver about the VMs of ``owner`` (``None``: everyone's), or only those in
    ``names``, store the answers and unplug the taps of those that are down.

    :param log: ``log(message, level="info")``, e.g. a task context's.
    :param list_unknown: also name hypervisor instances that no VM row claims.
    :param spread: a whole pass of the minutely job: stopped VMs an earlier pass of this process
        found quiet are read only on their slice's pass (:data:`QUIET_SLICES`); the first such
        pass of a process reads every VM.
    :returns: as :func:`reconcile`.
    """
    driver = active_driver(runtime)
    changed: dict[str, str] = {}
    answers: dict[int, tuple[Any, str, str, dict[str, Any]]] = {}  # row id -> (updated, new cache)
    down: list[tuple[str, Any, Any]] = []  # VMs not running, whose taps (if any) must go
    with session(runtime) as db:
        query = select(*ROW_COLUMNS)  # type: ignore[call-overload]
        # Only this host's VMs: another group host's driver answers for its own (issue 22).
        query = query.where(col(VM.host).in_((local_host_name(runtime), "")))
        if owner is not None:
            query = query.where(col(VM.owner) == owner)
        if names is not None:
            query = query.where(col(VM.name).in_(list(names)))
        whole = names is None and owner is None
        slice_ = _next_slice(runtime) if spread and whole else None
        if slice_ is not None:
            # Issue 15: reading 10,000 quiet rows a minute was most of a pass once their stat
            # calls were gone; every VM not stopped, and this pass's slice of the stopped ones.
            query = query.where(or_(col(VM.state) < "stopped", col(VM.state) > "stopped",
                                    col(VM.id) % QUIET_SLICES == slice_))
            total = db.exec(select(func.count()).select_from(VM).where(  # type: ignore[call-overload]
                col(VM.host).in_((local_host_name(runtime), "")))).one()
        rows = list(db.exec(query))
        if slice_ is None:
            total = len(rows)
    quiet = quiet_vms(runtime)
    calm: dict[str, tuple[Any, ...]] = {}  # found stopped: quiet once their taps are gone
    wanted: list[tuple[Any, Any, Any]] = []  # (row, vm_dir, signature) the driver is asked about
    for row in rows:
        mark = quiet.get(row.name) if names is None and row.state == "stopped" else None
        try:
            vm_dir, state_file = _vm_dir(runtime, row.name, row.datastore)
            signature = _signature(state_file)
        except Exception as exc:  # one broken VM must not stop the others being checked
            log(f"{row.name}: cannot read its state: {type(exc).__name__}: {exc}", "warning")
            continue
        if mark == (row.state_detail, signature):
            continue  # stopped, and nothing changed since a pass found it stopped
        wanted.append((row, vm_dir, signature))
    stored = _specs_and_status(runtime, [row.id for row, _, _ in wanted])
    # Ask the driver with no transaction open: a crash it reports is notified (written) meanwhile.
    for row, vm_dir, signature in wanted:
        try:
            spec_text, status_text, updated = stored[row.id]
            spec = _validated(runtime, row.id, spec_text)
            status = driver.status(spec, vm_dir)
        except Exception as exc:  # one broken VM must not stop the others being checked
            log(f"{row.name}: cannot read its state: {type(exc).__name__}: {exc}", "warning")
            continue
        if not status.active:
            down.append((row.name, spec, vm_dir))
            if status.state.value == "stopped":
                calm[row.name] = (status_detail(status), signature)
        state, detail, data = status.state.value, status_detail(status), cached_status(status)
        if row.state != state:  # a new detail alone is stored, not logged (10,000 lines after a restart)
            changed[row.name] = f"{row.state} -> {state}"
        cached = orjson.loads(status_text) if status_text else {}
        if row.id is not None and (row.state, row.state_detail, cached) != (state, detail, data):
            answers[row.id] = (updated, state, detail, data)
    if answers:
        with session(runtime, write=True) as db:
            for stored in db.exec(select(VM).where(col(VM.id).in_(list(answers)))):
                seen, state, detail, data = answers[stored.id or 0]  # a stored row always has an id
                if stored.updated == seen:  # else a task recorded a newer answer meanwhile
                    set_state(db, stored, state, detail, data)
    for name, spec, vm_dir in down:  # a crash or a guest power-off left its taps plugged
        try:
            release_nics(runtime, driver, spec, vm_dir, lambda line, name=name: log(f"{name}: {line}"))
        except Exception as exc:  # one VM's host trouble must not stop the others' clean-up
            log(f"{name}: cannot remove its taps: {type(exc).__name__}: {exc}", "warning")
            continue
        if name in calm:
            quiet[name] = calm[name]
    unknown: list[str] = []
    if list_unknown:
        unknown = sorted(set(driver.running_instances()) - {instance_name(row.name) for row in rows})
        if unknown and slice_ is not None:  # the rows this pass skipped may claim them
            unknown = sorted(set(unknown) - {instance_name(row.name) for row in _every_row(runtime)})
    if whole:  # forget what destroyed VMs left cached
        _forget_others(runtime, rows if slice_ is None else None, total)
    for name, change in changed.items():
        log(f"{name}: {change}")
    for name in unknown:
        log(f"hypervisor instance {name} belongs to no VM record", "warning")
    return {"checked": total, "changed": changed, "unknown": unknown}


# What a pass reads of every row: no spec, no cached status, no time stamps (issue 15: with
# 10,000 records the spec texts were most of the bytes a pass read, for VMs it then skipped,
# and converting every row's time stamp most of the rest).
ROW_COLUMNS = (col(VM.id), col(VM.name), col(VM.datastore), col(VM.state), col(VM.state_detail))
CHUNK = 500  # ids per IN list (well below SQLite's and MariaDB's limits)
# A whole pass looks at the state file of a stopped, quiet VM only every QUIET_SLICES-th pass
# (row id modulo QUIET_SLICES picks the pass): with 10,000 stopped records, 10,000 stat calls a
# minute were the minutely spike (issue 15). Such a VM has no supervisor that could write its
# state file (a start task sets the row going first, and the watcher follows every VM that is
# not stopped), so this only bounds how late a state file changed behind bHype's back is seen:
# within QUIET_SLICES passes (ten minutes with the minutely job).
QUIET_SLICES = 10


def _next_slice(runtime: Any) -> int | None:
    """The slice of stopped VMs this whole pass reads (1, 2, …, QUIET_SLICES - 1, 0, 1, …);
    ``None`` for the first pass of the process, which reads every VM (nothing is known quiet)."""
    counter: list[int] = runtime.extras.setdefault("vm.reconcile.pass", [0])
    counter[0] += 1
    return None if counter[0] == 1 else counter[0] % QUIET_SLICES


def _every_row(runtime: Any) -> list[Any]:
    """Every record of this host, as a whole pass without ``spread`` reads them."""
    with session(runtime) as db:
        return list(db.exec(select(*ROW_COLUMNS).where(  # type: ignore[call-overload]
            col(VM.host).in_((local_host_name(runtime), "")))))


def _forget_others(runtime: Any, rows: list[Any] | None, total: int) -> None:
    """Drop cached directories and specs of VMs that are gone; ``rows`` every record of this
    host, or ``None`` to read them when some VM must have been destroyed."""
    dirs = runtime.extras.get("vm.reconcile.dirs", {})
    if len(dirs) <= total:
        return  # no VM was destroyed (a renamed one would show as one more entry)
    if rows is None:
        rows = _every_row(runtime)
    ids = {row.id for row in rows}
    specs = runtime.extras.get("vm.reconcile.specs", {})
    for row_id in [row_id for row_id in specs if row_id not in ids]:
        del specs[row_id]
    keys = {(row.name, row.datastore) for row in rows}
    for key in [key for key in dirs if key not in keys]:
        del dirs[key]


def _specs_and_status(runtime: Any, ids: list[Any]) -> dict[Any, tuple[str, str | None, Any]]:
    """Spec and cached status texts, and the ``updated`` stamp, of the rows the driver is asked about."""
    found: dict[Any, tuple[str, str | None, Any]] = {}
    columns = (col(VM.id), type_coerce(col(VM.spec), Text()), type_coerce(col(VM.status), Text()), col(VM.updated))
    with session(runtime) as db:
        for start in range(0, len(ids), CHUNK):
            chunk = ids[start:start + CHUNK]
            for row_id, spec, status, updated in db.exec(select(*columns).where(col(VM.id).in_(chunk))):  # type: ignore[call-overload]
                found[row_id] = (spec, status, updated)
    return found


def _validated(runtime: Any, row_id: Any, spec_text: str) -> Any:
    """The row's spec, validated once per stored text: a running VM is asked about every
    minute, its spec changes rarely (the stored text is compared, not re-validated)."""
    cache: dict[Any, tuple[str, Any]] = runtime.extras.setdefault("vm.reconcile.specs", {})
    known = cache.get(row_id)
    if known is not None and known[0] == spec_text:
        return known[1]
    spec = validate_spec(orjson.loads(spec_text))
    cache[row_id] = (spec_text, spec)
    return spec


def quiet_vms(runtime: Any) -> dict[str, tuple[Any, ...]]:
    """This process's record of stopped VMs: name -> the mark (the driver's detail, state-file
    signature) seen when a pass last found it stopped with its taps gone.

    The minutely pass skips such a VM while its row still says stopped and its mark is
    unchanged (issue 15: 10,000 stopped VMs cost no spec validation and no state-file read a
    minute), and stats its state file only on its slice's pass (:data:`QUIET_SLICES`). A
    start changes the row's state and brings it back into the next pass at once; a state file
    written behind bHype's back changes the signature, seen on the VM's slice's pass.
    """
    return runtime.extras.setdefault("vm.reconcile.quiet", {})


def _vm_dir(runtime: Any, name: str, datastore: str) -> tuple[Any, str]:
    # A VM's directory does not move while its row exists; working it out again (the datastore
    # confines it with realpath) was most of a pass over 10,000 quiet VMs, and building its
    # state file's Path most of the rest (issue 15): both are kept, the path as text for stat.
    paths: dict[tuple[str, str], tuple[Any, str]] = runtime.extras.setdefault("vm.reconcile.dirs", {})
    known = paths.get((name, datastore))
    if known is None:
        vm_dir = open_datastore(runtime, datastore).vm_dir(name)
        known = paths[(name, datastore)] = (vm_dir, str(VMFiles(vm_dir).state))
    return known


def _signature(state_file: str) -> tuple[int, int] | None:
    # (mtime, inode) of the supervisor's state file: it writes a new file for every change.
    try:
        stat = os.stat(state_file)
    except FileNotFoundError:
        return None
    return (stat.st_mtime_ns, stat.st_ino)


def crash_listener(runtime: Any) -> Any:
    """A driver crash listener that emits ``vm.crashed`` to the VM's owner (and admins)."""

    def on_crash(instance: str, status: Any) -> None:
        with session(runtime) as db:
            rows = list(db.exec(select(VM.name, VM.owner)))
        owner = None
        name = instance
        for vm_name, vm_owner in rows:
            if instance_name(vm_name) == instance:
                name, owner = vm_name, vm_owner
                break
        runtime.notify(Event(
            kind="vm.crashed",
            message=f"VM {name} crashed: {status.detail or 'exit status ' + str(status.exit_status)}",
            severity="error",
            subject=f"vm:{name}",
            user=owner,
            data={"exit_status": status.exit_status, "detail": status.detail, "crash_id": status.crash_id},
        ))

    return on_crash
