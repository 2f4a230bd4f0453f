"""Scheduled snapshots: schedule records, and the periodic job that takes due snapshots and prunes.

Each run, per enabled schedule: the periods due now (:func:`~bhype_zfs.retention.due_periods`,
from the state table, or from the newest existing snapshot when the state is missing) are
taken with ``zfs snapshot [-r]`` (zfs-snapshot(8)), tagged ``org.bhype:schedule=<name>``;
then the schedule's own snapshots are pruned (:func:`~bhype_zfs.retention.prune`) in batches
of ``zfs destroy [-r] ds@a,b,c`` (zfs-destroy(8)). A failing schedule is recorded and reported
(``zfs.schedule_failed`` event); the others still run.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, col, select

from bhype_core.plugin_api import BhypeError, Conflict, Event, NotFound, ValidationErrors, session
from bhype_zfs import argv
from bhype_zfs.models import ZfsSchedule, ZfsScheduleBase, ZfsScheduleState
from bhype_zfs.names import check_dataset
from bhype_zfs.parse import parse_zfs_get
from bhype_zfs.retention import PERIODS, Candidate, Policy, due_periods, parse_name, prune, snapshot_name
from bhype_zfs.snapshots import list_snapshots
from bhype_zfs.tool import ZfsHost, zfs_host

SCHEDULE_PROPERTY = "org.bhype:schedule"
BACKUP_PROPERTY = "org.bhype:backup-base"
RUN_ROW = "_run"  # state row holding the last run's time and error
DESTROY_BATCH = 100  # snapshot names per `zfs destroy ds@a,b,...` (keeps argv short)


def policy_of(schedule: ZfsScheduleBase) -> Policy:
    """The retention policy a schedule record describes.

    :raises ValidationErrors: negative counts or a bad ``frequent_minutes`` (field named).
    """
    try:
        return Policy(**{p: getattr(schedule, p) for p in PERIODS}, frequent_minutes=schedule.frequent_minutes)
    except ValueError as exc:
        field = next((p for p in (*PERIODS, "frequent_minutes") if p in str(exc)), "schedule")
        raise ValidationErrors([(field, str(exc))]) from None


def create_schedule(runtime: Any, data: ZfsScheduleBase) -> ZfsSchedule:
    """Store a new schedule.

    :raises ValidationErrors: bad name, dataset or counts.
    :raises Conflict: a schedule of that name exists.
    """
    errors = ValidationErrors()
    from bhype_core.plugin_api import NAME_RE

    if not NAME_RE.match(data.name or ""):
        errors.add("name", "letters, digits, '-', '_', '.', starting with a letter or digit")
    try:
        check_dataset(data.dataset)
    except ValidationErrors as exc:
        errors.extend(exc)
    try:
        policy = policy_of(data)
        if not policy.active():
            errors.add("hourly", "the schedule keeps no snapshots: set at least one period's count")
    except ValidationErrors as exc:
        errors.extend(exc)
    errors.raise_if_any()
    with session(runtime, write=True) as db:
        if db.exec(select(ZfsSchedule).where(ZfsSchedule.name == data.name)).first() is not None:
            raise Conflict(f"a schedule named {data.name!r} already exists")
        row = ZfsSchedule.model_validate(data.model_dump())
        db.add(row)
    return row


def list_schedules(runtime: Any) -> list[ZfsSchedule]:
    """Every schedule, by name."""
    with Session(runtime.engine) as db:
        return list(db.exec(select(ZfsSchedule).order_by(col(ZfsSchedule.name))).all())


def delete_schedule(runtime: Any, name: str) -> None:
    """Remove a schedule and its state (its snapshots stay).

    :raises NotFound: no such schedule.
    """
    with session(runtime, write=True) as db:
        row = db.exec(select(ZfsSchedule).where(ZfsSchedule.name == name)).first()
        if row is None:
            raise NotFound(f"no schedule named {name!r}")
        for state in db.exec(select(ZfsScheduleState).where(ZfsScheduleState.schedule_id == row.id)).all():
            db.delete(state)
        db.flush()
        db.delete(row)


def states_of(db: Session, schedule_id: int) -> dict[str, ZfsScheduleState]:
    """A schedule's state rows by period (plus the ``_run`` row)."""
    rows = db.exec(select(ZfsScheduleState).where(ZfsScheduleState.schedule_id == schedule_id)).all()
    return {row.period: row for row in rows}


def candidates(host: ZfsHost, schedule: ZfsScheduleBase) -> list[Candidate]:
    """The schedule's own snapshots on its tree, as pruning sees them (holds and backup
    markers of any member count for the whole recursive snapshot)."""
    groups = list_snapshots(host, schedule.dataset, recursive=schedule.recursive)
    props = parse_zfs_get(host.text(argv.get_properties(
        host.tools, [SCHEDULE_PROPERTY, BACKUP_PROPERTY], [schedule.dataset],
        recursive=schedule.recursive, depth=None if schedule.recursive else 1, types=("snapshot",),
    )))
    result = []
    for entry in groups:
        parsed = parse_name(entry.name)
        owners = {props.get(m.full_name, {}).get(SCHEDULE_PROPERTY) for m in entry.members}
        if parsed is None or not any(o is not None and o.value == schedule.name for o in owners):
            continue
        markers = [props.get(m.full_name, {}).get(BACKUP_PROPERTY) for m in entry.members]
        marker = next((m.value for m in markers if m is not None and m.value), None)
        # The time in the name is the worker's clock when it took the snapshot; ages are
        # judged on that clock too (the host's `creation` may be skewed against it).
        result.append(Candidate(entry.name, parsed[0], held=entry.holds > 0, backup_base=marker))
    return result


def run_schedule(host: ZfsHost, schedule: ZfsSchedule, last_taken: dict[str, datetime | None],
                 now: datetime) -> dict[str, Any]:
    """Take the due snapshots and prune; returns ``taken`` (period → name) and ``pruned``.

    When the state table knows every period and none is due, nothing runs on the host: the
    job costs no command per minute. Pruning happens on runs that take a snapshot (a snapshot
    past its horizon waits at most one period longer).
    """
    policy = policy_of(schedule)
    if all(last_taken.get(p) is not None for p in policy.active()) and not due_periods(policy, last_taken, now):
        return {"taken": {}, "pruned": []}
    existing = candidates(host, schedule)
    known = dict(last_taken)
    for snap in existing:  # the state table may be new (or restored): trust the pool too
        parsed = parse_name(snap.name)
        if parsed is not None:
            period = parsed[1]
            if known.get(period) is None or parsed[0] > known[period]:  # type: ignore[operator]
                known[period] = parsed[0]
    due = due_periods(policy, known, now)
    taken = {period: snapshot_name(period, now) for period in due}
    for name in taken.values():
        # One command per period: zfs-snapshot(8) refuses two snapshots of one dataset at once.
        host.run(argv.snapshot(host.tools, [f"{schedule.dataset}@{name}"], recursive=schedule.recursive,
                               properties={SCHEDULE_PROPERTY: schedule.name}))
        existing.append(Candidate(name, now))
    doomed = prune(existing, policy, now)
    for start in range(0, len(doomed), DESTROY_BATCH):
        batch = doomed[start:start + DESTROY_BATCH]
        host.run(argv.destroy_snapshots(host.tools, schedule.dataset, batch, recursive=schedule.recursive))
    return {"taken": taken, "pruned": doomed}


def run_due(runtime: Any, now: datetime | None = None, host: ZfsHost | None = None) -> dict[str, Any]:
    """Run every enabled schedule once, here; returns what each did (tests and tools: the
    periodic job runs each schedule as a sub-task holding its locks, see :func:`run_all`)."""
    now = now or datetime.now(UTC)
    host = host or zfs_host(runtime)
    return {schedule.name: run_one(runtime, schedule, now, host)
            for schedule in list_schedules(runtime) if schedule.enabled}


def run_one(runtime: Any, schedule: ZfsSchedule, now: datetime, host: ZfsHost) -> dict[str, Any]:
    """Run one schedule: take what is due, prune, record the run (a failure is recorded and
    reported as a ``zfs.schedule_failed`` event, not raised)."""
    with session(runtime) as db:
        states = states_of(db, schedule.id or 0)
        last = {p: s.last_taken for p, s in states.items() if p != RUN_ROW}
    try:
        outcome = run_schedule(host, schedule, last, now)
        error = ""
    except BhypeError as exc:
        outcome, error = {"error": exc.message}, exc.message
        runtime.notify(Event("zfs.schedule_failed", f"snapshot schedule {schedule.name} failed: {error}",
                             severity="error", subject=f"dataset:{schedule.dataset}",
                             data={"schedule": schedule.name}))
    record_run(runtime, schedule, outcome.get("taken", {}), error, now)
    return outcome


def vms_on(runtime: Any, dataset: str) -> list[str]:
    """Names of the VMs on ZFS datastores whose dataset tree overlaps ``dataset`` (inside it,
    or containing it): a schedule's run holds their ``vm:<name>`` locks, so it never
    interleaves with a rollback, clone or destroy of one of them."""
    from bhype_core.plugin_api import list_vms
    from bhype_zfs.vms import datastore_of

    names = []
    rows = [(row.name, row.datastore) for row in list_vms(runtime)]
    for name, datastore in rows:
        try:
            vm_dataset = datastore_of(runtime, datastore).vm_dataset(name)
        except BhypeError:  # not a ZFS datastore: its disks are not in any pool
            continue
        if vm_dataset == dataset or vm_dataset.startswith(dataset + "/") or dataset.startswith(vm_dataset + "/"):
            names.append(name)
    return sorted(names)


def run_all(context: Any) -> dict[str, Any]:
    """``zfs.run_schedules``: each enabled schedule as a sub-task ``zfs.run_schedule`` holding
    ``dataset:<dataset>`` and the ``vm:<name>`` of every VM on it, run one after the other."""
    runtime = context.runtime
    handles = [
        context.submit("zfs.run_schedule", {"schedule": schedule.name, "dataset": schedule.dataset,
                                            "vms": vms_on(runtime, schedule.dataset)})
        for schedule in list_schedules(runtime) if schedule.enabled
    ]
    report: dict[str, Any] = {}
    for handle, outcome in zip(handles, context.wait(handles), strict=True):
        report[handle.id] = outcome.result if outcome.ok else {"state": outcome.state, "error": outcome.error}
    return report


def run_named(context: Any, schedule: str, dataset: str, vms: list[str] | None = None) -> dict[str, Any]:
    """``zfs.run_schedule``: run the schedule ``schedule`` now (``dataset`` and ``vms`` name
    its locks; a schedule whose dataset changed since is skipped)."""
    runtime = context.runtime
    row = next((s for s in list_schedules(runtime) if s.name == schedule), None)
    if row is None or not row.enabled or row.dataset != dataset:
        context.log(f"schedule {schedule} is gone, disabled or changed: nothing to do")
        return {"schedule": schedule, "skipped": True}
    outcome = run_one(runtime, row, datetime.now(UTC), zfs_host(runtime))
    for period, name in outcome.get("taken", {}).items():
        context.log(f"{period}: took {dataset}@{name}")
    if outcome.get("pruned"):
        context.log(f"pruned {len(outcome['pruned'])} snapshot(s)")
    if outcome.get("error"):
        context.log(f"failed: {outcome['error']}", "error")
    return {"schedule": schedule, **outcome}


def record_run(runtime: Any, schedule: ZfsSchedule, taken: dict[str, str], error: str, now: datetime) -> None:
    """Remember when each period was taken, and the run's outcome in the ``_run`` row."""
    with session(runtime, write=True) as db:
        states = states_of(db, schedule.id or 0)
        for period in [*taken, RUN_ROW]:
            state = states.get(period) or ZfsScheduleState(schedule_id=schedule.id or 0, period=period)
            if period == RUN_ROW:
                state.last_taken, state.last_error = now, error
            else:
                state.last_taken = now
            state.updated = now
            db.add(state)
