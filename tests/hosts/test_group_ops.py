"""The group's operational parts (issue 22): nudges reach the target host's queue, switch.apply
and periodic runs stay on their host, placement needs the VM's ISO library files on the host,
and the pieces that carry a worker through a database or Redis restart (outage logging, the
repeatable pick-up, lost start messages queued again)."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy.exc import OperationalError
from sqlmodel import Session

from bhype_core.auth.principal import Principal
from bhype_core.db.task_models import QUEUED, RUNNING
from bhype_core.errors import ValidationErrors
from bhype_core.hosts.placement import group_library, hosts_holding, place
from bhype_core.hosts.registry import beat, register
from bhype_core.network.models import row_from, validate_switch
from bhype_core.network.service import host_switch_configs
from bhype_core.registry import PeriodicJob
from bhype_core.spec import validate_spec
from bhype_core.tasks import dispatch, outages, recovery, service, store
from bhype_core.tasks.periodic import submit_run
from bhype_core.tasks.plan import Limits
from bhype_core.tasks.store import WorkerIdentity
from bhype_core.vm.services import open_datastore

ALICE = Principal("alice", "operator")
LIMITS = Limits(per_user=10, total=10)


def down() -> OperationalError:
    return OperationalError("SELECT 1", {}, ConnectionRefusedError(111, "Connection refused"))


def test_placement_needs_the_vms_image_in_the_hosts_iso_library(make_host_runtime):
    hosts = {name: make_host_runtime(name) for name in ("h1", "h2", "h3")}
    image = open_datastore(hosts["h2"], "default").iso_path("debian-12.qcow2")
    image.parent.mkdir(parents=True, exist_ok=True)
    image.write_bytes(b"QFI\xfb")
    for runtime in hosts.values():
        register(runtime)
        beat(runtime)  # measures the library
    spec = validate_spec({"name": "a", "owner": "alice", "memory": "64M",
                          "disks": [{"size": "1G", "source": "debian-12.qcow2"}]})
    assert place(hosts["h1"], spec, "default") == "h2"
    assert hosts_holding(hosts["h1"], "default", "debian-12.qcow2") == ["h2"]
    assert group_library(hosts["h1"], "default") == {"debian-12.qcow2"}
    with pytest.raises(ValidationErrors) as caught:
        place(hosts["h1"], spec, "default", chosen="h3")
    assert caught.value.errors[0].message == "no host fits this VM: h3: no debian-12.qcow2 in its ISO library"


def test_switch_apply_takes_only_its_own_hosts_switches(make_host_runtime):
    h1, h2 = make_host_runtime("h1"), make_host_runtime("h2")
    with Session(h1.engine) as db:
        db.add(row_from(validate_switch({"name": "lan1"}), host="h1"))
        db.add(row_from(validate_switch({"name": "lan2"}), host="h2"))
        db.add(row_from(validate_switch({"name": "old"}), host=""))  # from before the group
        db.commit()
    assert sorted(host_switch_configs(h2)) == ["lan2", "old"]
    assert sorted(host_switch_configs(h1)) == ["lan1", "old"]


def test_a_periodic_run_skips_only_for_a_run_of_its_own_host(make_host_runtime):
    h1, h2 = make_host_runtime("h1"), make_host_runtime("h2")
    register(h1), register(h2)
    job = PeriodicJob(name="test.each-host", kind="core.ping", arguments={"echo": "periodic"}, run_at_start=True)
    first = submit_run(h1, job, "the run at start")
    assert first is not None and first.host == "h1"
    other = submit_run(h2, job, "the run at start")  # h1's queued run does not stop h2's
    assert other is not None and other.host == "h2"
    assert submit_run(h1, job, "the run at start") is None  # its own is still queued


def test_a_nudge_goes_to_the_queue_of_the_tasks_host(make_host_runtime, redis_url, redis_prefix):
    redis = {"core": {"redis_url": redis_url}, "queue": {"backend": "redis", "name": redis_prefix}}
    h1, h2 = make_host_runtime("h1", **redis), make_host_runtime("h2", **redis)
    register(h1), register(h2)
    assert (h1.queue.huey.pending_count(), h2.queue.huey.pending_count()) == (0, 0)
    task = service.submit(h1, ALICE, "core.ping", {"echo": 1}, host="h2")
    assert task.host == "h2"
    assert (h1.queue.huey.pending_count(), h2.queue.huey.pending_count()) == (0, 1)
    [message] = h2.queue.huey.pending()
    assert message.name == "nudge"
    service.submit(h1, ALICE, "core.ping", {"echo": 2})  # its own host: its own queue
    assert (h1.queue.huey.pending_count(), h2.queue.huey.pending_count()) == (1, 1)


def test_an_outage_is_logged_once_and_its_end_once(caplog):
    outage = outages.OutageLog("thing")
    with caplog.at_level(logging.DEBUG, logger="bhype.tasks"):
        for _ in range(5):
            outage.failed(down())
        outage.ok()
        outage.ok()
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2
    assert warnings[0].startswith("thing: cannot use the server (OperationalError:")
    assert warnings[1].startswith("thing: the server works again after") and "(5 failed attempt(s))" in warnings[1]


def test_retry_while_down_retries_outages_only():
    pauses: list[float] = []
    calls = iter([down(), down(), "done"])

    def flaky():
        value = next(calls)
        if isinstance(value, Exception):
            raise value
        return value

    assert outages.retry_while_down(flaky, "flaky", sleep=pauses.append) == "done"
    assert pauses == [0.2, 0.4]
    with pytest.raises(ValueError):
        outages.retry_while_down(lambda: (_ for _ in ()).throw(ValueError("bug")), "bug", sleep=pauses.append)
    with pytest.raises(OperationalError):  # the server never came back within retry_for
        outages.retry_while_down(lambda: (_ for _ in ()).throw(down()), "gone", retry_for=0.0, sleep=pauses.append)


def claim(runtime, me: WorkerIdentity, count: int = 1) -> list[tuple[str, str]]:
    for index in range(count):
        service.submit(runtime, ALICE, "core.ping", {"echo": index})
    return dispatch.dispatch_pass(runtime.engine, LIMITS, me)


def test_a_pick_up_whose_answer_was_lost_is_found_on_the_retry(make_host_runtime, monkeypatch):
    runtime = make_host_runtime("h1")
    me = WorkerIdentity("w1", "h1", 1)
    [(task_id, token)] = claim(runtime, me)
    real = store.pick_up
    attempts = []

    def committed_then_lost(*args):
        attempts.append(args)
        if len(attempts) == 1:
            real(*args)  # the server committed it, then restarted before answering
            raise down()
        return real(*args)

    monkeypatch.setattr(store, "pick_up", committed_then_lost)
    monkeypatch.setattr(outages.time, "sleep", lambda seconds: None)
    task = outages.pick_up(runtime.engine, task_id, token, me)
    assert task is not None and task.id == task_id and task.picked_up is not None and len(attempts) == 2
    # A stale message for another token is still skipped.
    assert outages.pick_up(runtime.engine, task_id, "other-token", me) is None


def test_started_tasks_whose_message_is_gone_are_queued_again(make_host_runtime):
    runtime = make_host_runtime("h1")
    me = WorkerIdentity("w1", "h1", 1)
    claims = claim(runtime, me, count=3)
    carried_id, carried_token = claims[0]
    runtime.queue.send_scheduled(carried_id, carried_token)  # only the first one's message exists
    assert recovery.requeue_lost(runtime.engine, runtime.queue, me) == []  # too young to count as lost
    lost = recovery.requeue_lost(runtime.engine, runtime.queue, me, lost_after=0.0)
    assert sorted(lost) == sorted(task_id for task_id, _ in claims[1:])
    assert store.get_task(runtime.engine, carried_id).state == RUNNING
    for task_id in lost:
        task = store.get_task(runtime.engine, task_id)
        assert (task.state, task.dispatch_token, task.worker_id) == (QUEUED, None, None)
        assert [line.message for line in store.read_log(runtime.engine, task_id)] == [
            "queued again: its queue message was lost (the queue server restarted?)"]
    # A late message for a requeued claim is stale: its token no longer matches.
    assert store.pick_up(runtime.engine, lost[0], dict(claims)[lost[0]], me) is None
