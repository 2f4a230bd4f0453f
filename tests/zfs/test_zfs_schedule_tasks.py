"""The scheduled-snapshot job as tasks: ``zfs.run_schedules`` (the periodic job's kind, owned by
``@system``) runs each schedule as a sub-task ``zfs.run_schedule`` holding ``dataset:<dataset>``
and the ``vm:<name>`` lock of every VM on it, so it waits for a rollback or destroy of such a VM
(issue 12). The zfs commands are the recorded stand-ins: what is tested is the locking."""

from __future__ import annotations

import threading
import time

import bhype_core.builtins.models as core_models
import bhype_core.builtins.tasks as core_tasks
import bhype_core.builtins.vm_tasks as core_vms
import bhype_zfs.plugin
from bhype_core.auth.principal import Principal
from bhype_core.db.migrate import upgrade
from bhype_core.db.session import session
from bhype_core.runtime import build_runtime
from bhype_core.spec import VMSpec
from bhype_core.tasks import dispatch, service, store
from bhype_core.tasks.periodic import submit_run
from bhype_core.tasks.plan import Limits, waiting_for_lock
from bhype_core.tasks.store import WorkerIdentity
from bhype_core.tasks.system import SYSTEM_OWNER
from bhype_core.testing import make_settings
from bhype_core.testing.tasks import run_queued
from bhype_core.vm.models import VM
from bhype_zfs import schedules
from bhype_zfs.models import ZfsScheduleBase
from bhype_zfs.tasks import schedule_lock

WAIT = 60.0  # generous for a loaded machine; never a timing assertion


def runtime_with_vms(tmp_path, plugin_manager, register_plugin, fake_zfs_tools):
    for name, plugin in (("core_models", core_models), ("core_tasks", core_tasks), ("core_vms", core_vms),
                         ("zfs", bhype_zfs.plugin)):
        register_plugin(plugin, name)
    settings = make_settings(tmp_path / "data", zfs={"pool": "tank", **fake_zfs_tools}, vm={
        "datastores": {"zfs": {"backend": "zfs", "dataset": "tank/bhype"},
                       "plain": {"backend": "directory", "path": str(tmp_path / "plain")}},
        "default_datastore": "zfs",
    })
    runtime = build_runtime(settings, plugin_manager)
    upgrade(runtime)
    with session(runtime, write=True) as db:
        for name, datastore in (("web", "zfs"), ("db", "zfs"), ("files", "plain")):
            spec = VMSpec.model_validate({"name": name})
            db.add(VM(name=name, uuid=str(spec.uuid), owner="alice", datastore=datastore, spec=spec.to_data()))
    return runtime


def test_a_schedule_locks_its_dataset_and_the_vms_on_it(tmp_path, plugin_manager, register_plugin, fake_zfs_tools):
    runtime = runtime_with_vms(tmp_path, plugin_manager, register_plugin, fake_zfs_tools)
    assert schedules.vms_on(runtime, "tank/bhype/vms/web") == ["web"]
    assert schedules.vms_on(runtime, "tank/bhype") == ["db", "web"]  # a tree holding both
    assert schedules.vms_on(runtime, "tank/bhype/vms/web/disk0") == ["web"]  # inside the VM's tree
    assert schedules.vms_on(runtime, "tank/other") == []
    assert schedule_lock({"dataset": "tank/bhype", "vms": ["db", "web"]}) == [
        "dataset:tank/bhype", "vm:db", "vm:web"]
    job = runtime.registry.periodic_jobs["zfs.snapshot-schedules"]
    assert (job.kind, job.minute) == ("zfs.run_schedules", "*")


def test_a_scheduled_run_waits_for_a_task_holding_a_vms_lock(tmp_path, plugin_manager, register_plugin,
                                                             fake_zfs_tools):
    runtime = runtime_with_vms(tmp_path, plugin_manager, register_plugin, fake_zfs_tools)
    schedules.create_schedule(runtime, ZfsScheduleBase(name="web-hourly", dataset="tank/bhype/vms/web", hourly=2))
    # A rollback of web runs in another worker (its row holds vm:web).
    # (A task of another group host, claimed by that host's worker: issue 22.)
    rollback = service.submit(runtime, Principal("alice", "operator"), "core.ping", {"locks": ["vm:web"]},
                              host="elsewhere")
    other = WorkerIdentity("f" * 32, "elsewhere", 1)
    [(rollback_id, token)] = dispatch.dispatch_pass(runtime.engine, Limits(5, 5), other)
    assert rollback_id == rollback.id

    run = submit_run(runtime, runtime.registry.periodic_jobs["zfs.snapshot-schedules"], "the 10:00 run")
    assert run.owner == SYSTEM_OWNER and run.locks == []
    runner = threading.Thread(target=run_queued, args=(runtime,))
    runner.start()
    try:
        deadline = time.monotonic() + WAIT
        while not store.children_of(runtime.engine, run.id) or store.children_of(
                runtime.engine, run.id)[0].progress_message != waiting_for_lock("vm:web", rollback.id):
            assert time.monotonic() < deadline, "the schedule's sub-task never waited for vm:web"
            time.sleep(0.05)
        (child,) = store.children_of(runtime.engine, run.id)
        assert (child.kind, child.owner, child.state) == ("zfs.run_schedule", SYSTEM_OWNER, "queued")
        assert child.locks == ["dataset:tank/bhype/vms/web", "vm:web"]
        assert store.finish(runtime.engine, rollback.id, token, "succeeded")  # the rollback ends
    finally:
        runner.join(WAIT)
        runtime.queue.scheduler.lease.release()
    assert not runner.is_alive()
    done, child, rolled = (store.get_task(runtime.engine, i) for i in (run.id, child.id, rollback.id))
    assert (done.state, child.state) == ("succeeded", "succeeded")
    assert child.started >= rolled.finished  # never alongside the rollback
    assert done.result[child.id]["schedule"] == "web-hourly"
