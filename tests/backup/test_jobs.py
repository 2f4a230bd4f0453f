"""Backup jobs end to end in one process: validation, the minutely tick (missed slots run once,
never a second run beside a queued one), a run (``backup.run`` per selected VM as sub-tasks,
failures reported as ``backup.failed``), retention pruning through ``delete_point``, and
``backup.overdue``.

``backup.run`` here is a small recording plugin with bak's argument shape (``{"vm", "target",
"mode", "job"}`` → a complete ``BackupPoint`` row, ``{"point": ID}``): what is tested is the job
machinery around it; the real backup is tested end to end in test_jobs_e2e.py.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlmodel import select

import bhype_backup.jobs_plugin
import bhype_backup.plugin
import bhype_core.builtins.models as core_models
import bhype_core.builtins.tasks as core_tasks
import bhype_core.builtins.vm_tasks as core_vms
from bhype_backup.jobs_models import BackupJob
from bhype_backup.jobs_retention import doomed_points
from bhype_backup.jobs_service import JobCreate, create_job, get_job, selected_vms, update_job
from bhype_backup.models import BackupPoint, BackupTarget
from bhype_core.auth.principal import Principal
from bhype_core.db.migrate import upgrade
from bhype_core.db.session import session
from bhype_core.db.task_models import Task
from bhype_core.errors import ValidationErrors
from bhype_core.hookspecs import hookimpl
from bhype_core.registry import TaskKind
from bhype_core.retention_policy import Policy
from bhype_core.runtime import build_runtime
from bhype_core.spec import VMSpec
from bhype_core.tasks import dispatch, service
from bhype_core.tasks.periodic import submit_run
from bhype_core.tasks.plan import Limits
from bhype_core.tasks.store import WorkerIdentity
from bhype_core.testing import make_settings
from bhype_core.testing.roles import role_account
from bhype_core.testing.tasks import run_queued
from bhype_core.vm.models import VM


class Recorder:
    """A ``backup.run`` with bak's argument shape that records calls and makes point rows,
    and a ``bhype_notify`` that keeps events."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []
        self.events: list[Any] = []
        self.fail: set[str] = set()
        self.clock: datetime | None = None

    def backup_run(self, context: Any, vm: str, target: str, mode: str, job: int | None = None) -> dict:
        self.calls.append({"vm": vm, "target": target, "mode": mode, "job": job, "owner": context.user})
        if vm in self.fail:
            raise ValueError(f"rsync: write failed on {vm}/disk0.img: No space left on device (28)")
        with session(context.runtime, write=True) as db:
            row = db.exec(select(VM).where(VM.name == vm)).one()
            when = self.clock or datetime.now(UTC)
            point = BackupPoint(vm_uuid=row.uuid, vm_name=vm, target=target, path=f"{vm}/{when:%Y%m%dT%H%M%S}",
                                mode=mode, created=when, finished=when, complete=True, job_id=job, size=1)
            db.add(point)
            db.flush()
            return {"point": point.id}

    @hookimpl
    def bhype_register_tasks(self, register):
        register(TaskKind(name="backup.run", run=self.backup_run, role="operator",
                          locks=lambda a: [f"vm:{a.get('vm')}"]))

    @hookimpl
    def bhype_notify(self, event):
        self.events.append(event)


class BackupTables:
    """The ``backup`` hook module's tables and event kinds without its task kinds (the
    :class:`Recorder` stands in for ``backup.run``)."""

    @hookimpl
    def bhype_register_models(self, register):
        bhype_backup.plugin.bhype_register_models(register)

    @hookimpl
    def bhype_register_event_kinds(self, register):
        bhype_backup.plugin.bhype_register_event_kinds(register)

    @hookimpl
    def bhype_register_settings(self, register):
        bhype_backup.plugin.bhype_register_settings(register)


def jobs_runtime(tmp_path, plugin_manager, register_plugin, local_user, **sections):
    """A migrated runtime with the core, both backup hook modules and a :class:`Recorder`;
    target ``nas``; VMs web (alice, prod), db (bob, prod sql), scratch (alice), other (carol);
    ``recorder.admin`` is a real admin account."""
    recorder = Recorder()
    for name, plugin in (("core_models", core_models), ("core_tasks", core_tasks), ("core_vms", core_vms),
                         ("backup", BackupTables()), ("backup_jobs", bhype_backup.jobs_plugin),
                         ("recorder", recorder)):
        register_plugin(plugin, name)
    runtime = build_runtime(make_settings(tmp_path / "data", **sections), plugin_manager)
    upgrade(runtime)
    with session(runtime, write=True) as db:
        db.add(BackupTarget(name="nas", kind="local", destination=str(tmp_path / "nas")))
        for name, owner, tags in (("web", "alice", ["prod"]), ("db", "bob", ["prod", "sql"]),
                                  ("scratch", "alice", []), ("other", "carol", [])):
            spec = VMSpec.model_validate({"name": name, "tags": tags})
            db.add(VM(name=name, uuid=str(spec.uuid), owner=owner, datastore="default", spec=spec.to_data()))
    recorder.admin = Principal(role_account(local_user, runtime).name, "admin")
    runtime.test_admin = recorder.admin.name
    return runtime, recorder


@pytest.fixture
def jobs(tmp_path, plugin_manager, register_plugin, local_user):
    runtime, recorder = jobs_runtime(tmp_path, plugin_manager, register_plugin, local_user)
    yield runtime, recorder
    runtime.queue.scheduler.lease.release()
    runtime.engine.dispose()


def add(runtime, **fields) -> BackupJob:
    return create_job(runtime, runtime.test_admin, JobCreate(**{"name": "nightly", "target": "nas", **fields}))


def test_a_job_is_validated_as_a_whole(jobs):
    runtime, _ = jobs
    with pytest.raises(ValidationErrors) as caught:
        create_job(runtime, "root", JobCreate(name="-bad", target="nowhere", mode="fast", schedule="61 * * * *",
                                              retention="daily=x", tags=["bad tag"], drill_schedule="@daily"))
    fields = {error.path for error in caught.value.errors}
    assert {"name", "target", "mode", "schedule", "retention", "tags.0", "drill_check"} <= fields
    with pytest.raises(ValidationErrors, match="select VMs"):
        add(runtime)
    with pytest.raises(ValidationErrors, match="keeps nothing"):
        add(runtime, vms=["web"], retention="daily=0")
    add(runtime, vms=["web"])
    from bhype_core.errors import Conflict

    with pytest.raises(Conflict):
        add(runtime, vms=["db"])


def test_selection_by_name_owner_and_tag(jobs):
    runtime, _ = jobs
    job = add(runtime, vms=["other"], owners=["bob"], tags=["prod"])
    assert [vm.name for vm in selected_vms(runtime, job)] == ["db", "other", "web"]
    assert [vm.name for vm in selected_vms(runtime, add(runtime, name="a", owners=["alice"]))] == ["scratch", "web"]


def test_a_run_backs_up_each_selected_vm_and_reports_failures(jobs):
    runtime, recorder = jobs
    job = add(runtime, tags=["prod"], mode="crash")
    recorder.fail = {"db"}
    task = service.submit(runtime, recorder.admin, "backup.job.run", {"job": job.id})
    run_queued(runtime)
    with session(runtime) as db:
        row = db.get(Task, task.id)
    assert row.state == "failed" and "backup failed for db" in row.error["message"]
    assert sorted((c["vm"], c["target"], c["mode"], c["job"]) for c in recorder.calls) == [
        ("db", "nas", "crash", job.id), ("web", "nas", "crash", job.id)]
    [failed] = [e for e in recorder.events if e.kind == "backup.failed"]
    assert failed.subject == "vm:db" and "No space left" in failed.message and failed.data["job"] == "nightly"
    [full] = [e for e in recorder.events if e.kind == "backup.target_full"]
    assert full.subject == "backup-target:nas" and full.data["vm"] == "db"
    stored = get_job(runtime, "nightly")
    assert stored.last_state == "failed" and stored.last_success is None and stored.last_task == task.id
    recorder.fail = set()
    again = service.submit(runtime, recorder.admin, "backup.job.run", {"job": job.id})
    run_queued(runtime)
    with session(runtime) as db:
        assert db.get(Task, again.id).state == "succeeded"
    assert get_job(runtime, "nightly").last_state == "succeeded"


def test_the_tick_runs_missed_slots_once_and_never_beside_a_queued_run(jobs):
    runtime, recorder = jobs
    job = add(runtime, vms=["web"], schedule="*/5 * * * *")
    tick = runtime.registry.periodic_jobs["backup.jobs"]
    assert (tick.kind, tick.minute) == ("backup.jobs.tick", "*")
    # Nothing is due right after the job was made (the slot already past is not "missed").
    submit_run(runtime, tick, "now")
    run_queued(runtime)
    assert recorder.calls == []
    # The worker was away for a day: 288 slots passed; one run.
    update_job(runtime, job.id, last_slot=datetime.now(UTC) - timedelta(days=1))
    first = submit_run(runtime, tick, "after a day")
    run_queued(runtime)
    # Owned by the admin who made the job, as are its backup.run sub-tasks.
    assert len(recorder.calls) == 1 and recorder.calls[0]["owner"] == recorder.admin.name
    with session(runtime) as db:
        runs = db.exec(select(Task).where(Task.kind == "backup.job.run")).all()
        assert len(runs) == 1 and runs[0].owner == recorder.admin.name and runs[0].locks == [f"backup_job:{job.id}"]
        assert db.get(Task, first.id).result["nightly"]["run"] == runs[0].id
    # A slot comes while a (manual) run is still queued (waiting for its lock, which another
    # worker's task holds): the tick adds no second run, and the lock keeps them apart anyway.
    # (A task of another group host: only that host's workers claim it, issue 22.)
    holder = service.submit(runtime, recorder.admin, "core.ping", {"locks": [f"backup_job:{job.id}"]},
                            host="elsewhere")
    [(holder_id, _)] = dispatch.dispatch_pass(runtime.engine, Limits(5, 5), WorkerIdentity("f" * 32, "elsewhere", 1))
    assert holder_id == holder.id
    queued = service.submit(runtime, recorder.admin, "backup.job.run", {"job": job.id})
    update_job(runtime, job.id, last_slot=datetime.now(UTC) - timedelta(hours=1))
    second = submit_run(runtime, tick, "while queued")
    run_queued(runtime)
    with session(runtime) as db:
        assert db.get(Task, second.id).result["nightly"]["skipped"] == queued.id
        assert db.get(Task, queued.id).state == "queued"  # still waiting for the lock
        assert len(db.exec(select(Task).where(Task.kind == "backup.job.run")).all()) == 2
    assert len(recorder.calls) == 1


def test_two_runs_of_one_job_hold_one_lock(jobs):
    runtime, _ = jobs
    job = add(runtime, vms=["web"])
    kind = runtime.registry.tasks["backup.job.run"]
    assert kind.locks({"job": job.id}) == [f"backup_job:{job.id}"]


def test_retention_prunes_the_jobs_own_points_through_delete_point(jobs):
    runtime, recorder = jobs
    job = add(runtime, vms=["web"], retention="last=2 daily=3")
    base = datetime.now(UTC).replace(hour=1, minute=0, second=0, microsecond=0) - timedelta(days=10)
    # Ten days of one backup a day, plus a point of another job and a manual one (never touched).
    with session(runtime, write=True) as db:
        web = db.exec(select(VM).where(VM.name == "web")).one()
        for day in range(10):
            when = base + timedelta(days=day)
            db.add(BackupPoint(vm_uuid=web.uuid, vm_name="web", target="nas", path=f"web/{day}", mode="snapshot",
                               created=when, finished=when, complete=True, job_id=job.id))
        db.add(BackupPoint(vm_uuid=web.uuid, vm_name="web", target="nas", path="web/manual", mode="snapshot",
                           created=base, complete=True, job_id=None))
        db.add(BackupPoint(vm_uuid=web.uuid, vm_name="web", target="nas", path="web/other", mode="snapshot",
                           created=base, complete=True, job_id=job.id + 1000))
    recorder.clock = base + timedelta(days=10)
    task = service.submit(runtime, recorder.admin, "backup.job.run", {"job": job.id})
    run_queued(runtime)
    with session(runtime) as db:
        assert db.get(Task, task.id).state == "succeeded", db.get(Task, task.id).error
        left = sorted(p.path for p in db.exec(select(BackupPoint)).all())
    # Kept: the new point (day 10), days 9 and 8 (daily=3 and last=2), the manual and other job's.
    assert left == sorted(["web/8", "web/9", "web/manual", "web/other", f"web/{recorder.clock:%Y%m%dT%H%M%S}"])


def test_doomed_points_is_the_core_policy():
    class P:
        def __init__(self, i, when):
            self.id, self.created = i, when

    now = datetime(2026, 1, 10, 12, tzinfo=UTC)
    points = [P(i, now - timedelta(hours=6 * i)) for i in range(12)]
    # kept: 0 (last, daily), 3 (daily), 7 (daily, within 2 days)
    assert doomed_points(points, Policy(last=1, daily=2), now) == [11, 10, 9, 8, 6, 5, 4, 2, 1]


def test_overdue_is_reported_once_per_missed_slot(jobs):
    runtime, recorder = jobs
    job = add(runtime, vms=["web"], schedule="0 * * * *", window_minutes=30)
    now = datetime.now(UTC)
    update_job(runtime, job.id, created=now - timedelta(days=2), last_slot=now)  # no run is due now
    tick = runtime.registry.periodic_jobs["backup.jobs"]
    for _ in range(2):
        submit_run(runtime, tick, "check")
        run_queued(runtime)
    overdue = [e for e in recorder.events if e.kind == "backup.overdue"]
    assert len(overdue) == 1 and overdue[0].data["job"] == "nightly" and overdue[0].data["last_success"] is None
    update_job(runtime, job.id, last_success=now)
    submit_run(runtime, tick, "after success")
    run_queued(runtime)
    assert len([e for e in recorder.events if e.kind == "backup.overdue"]) == 1


def test_verify_is_for_admins_and_the_owner_of_the_points_vm(jobs):
    runtime, recorder = jobs
    with session(runtime, write=True) as db:
        web = db.exec(select(VM).where(VM.name == "web")).one()  # alice's
        point = BackupPoint(vm_uuid=web.uuid, vm_name="web", target="nas", path="web/1", mode="stop",
                            complete=True)
        db.add(point)
        db.flush()
        point_id = point.id
    from bhype_core.errors import NotFound

    queued = service.submit(runtime, Principal("alice", "operator"), "backup.verify", {"point": point_id})
    assert queued.locks == [f"backup_point:{point_id}"]
    with pytest.raises(NotFound, match=f"no backup point {point_id}"):
        service.submit(runtime, Principal("bob", "operator"), "backup.verify", {"point": point_id})
    with pytest.raises(NotFound):
        service.submit(runtime, Principal("alice", "operator"), "backup.verify", {"point": point_id + 99})
    service.submit(runtime, recorder.admin, "backup.verify", {"point": point_id})
