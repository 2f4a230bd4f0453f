"""Host identity, registry, heartbeats, routing and placement (issue 22) on one shared database:
each runtime is one host of the group, as the worker of that host would build it."""

from __future__ import annotations

import os
from datetime import timedelta

import pytest
from sqlalchemy import update
from sqlmodel import Session, col, select

from bhype_core import __version__
from bhype_core.auth.principal import Principal
from bhype_core.db.models import utcnow
from bhype_core.db.task_models import QUEUED, RUNNING, Task
from bhype_core.errors import ValidationErrors
from bhype_core.hosts.heartbeat import mark_waiting
from bhype_core.hosts.models import Host
from bhype_core.hosts.placement import place
from bhype_core.hosts.registry import REACHABLE, UNREACHABLE, beat, host_states, register
from bhype_core.hosts.routing import task_host
from bhype_core.hosts.settings import queue_name
from bhype_core.hosts.states import mark_unknown
from bhype_core.hosts.versions import unknown_kind
from bhype_core.network.models import row_from, validate_switch
from bhype_core.spec import validate_spec
from bhype_core.tasks import dispatch, service, store
from bhype_core.tasks.plan import Limits
from bhype_core.tasks.store import WorkerIdentity
from bhype_core.vm.models import VM

ALICE = Principal("alice", "operator")


def add_vm(runtime, name: str, host: str, state: str = "stopped") -> None:
    data = validate_spec({"name": name, "owner": "alice", "boot": "grub"}).to_data()
    with Session(runtime.engine) as db:
        db.add(VM(name=name, uuid=data["uuid"], owner="alice", datastore="default", spec=data, state=state, host=host))
        db.commit()


def vm_host(runtime, name: str) -> str:
    with Session(runtime.engine) as db:
        return db.exec(select(VM).where(VM.name == name)).one().host


def age_heartbeat(runtime, name: str, seconds: float) -> None:
    """Pretend host ``name``'s last database heartbeat was ``seconds`` ago (its worker stopped)."""
    with runtime.engine.begin() as connection:
        connection.execute(update(Host).where(col(Host.name) == name)
                           .values(last_seen=utcnow() - timedelta(seconds=seconds)))


def states(runtime) -> dict[str, str]:
    return {state.host.name: state.state for state in host_states(runtime)}


def test_the_first_host_registers_its_capacity_and_adopts_the_single_host_rows(make_host_runtime):
    runtime = make_host_runtime("solo")
    add_vm(runtime, "old-vm", host="")  # a row from before the upgrade
    with Session(runtime.engine) as db:
        db.add(row_from(validate_switch({"name": "lan"})))
        db.commit()
    row = register(runtime)
    assert row.capacity["cpus"] == os.cpu_count()
    assert row.capacity["memory_total"] >= row.capacity["memory_free"] > 0
    assert row.capacity["datastores"]["default"]["backend"] == "directory"
    assert row.capacity["datastores"]["default"]["free"] > 0
    assert row.capacity["switches"] == ["lan"]  # adopted with the VM before capacity is measured again
    assert row.versions["bhype-core"] == __version__
    assert "vm.create" in row.task_kinds and row.hypervisor == "qemu" and row.platform == "linux"
    assert vm_host(runtime, "old-vm") == "solo"
    # A second host registering later adopts nothing.
    add_vm(runtime, "orphan", host="")
    register(make_host_runtime("second"))
    assert vm_host(runtime, "orphan") == ""


def test_a_host_missing_heartbeats_is_unreachable_and_its_vms_unknown_until_it_beats_again(make_host_runtime):
    h1, h2 = make_host_runtime("h1", host={"unreachable_after": 30}), make_host_runtime("h2")
    register(h1)
    register(h2)
    add_vm(h1, "on-h2", host="h2", state="running")
    add_vm(h1, "on-h1", host="h1", state="running")
    assert states(h1) == {"h1": REACHABLE, "h2": REACHABLE}
    age_heartbeat(h1, "h2", 31)
    assert states(h1) == {"h1": REACHABLE, "h2": UNREACHABLE}
    vms = [{"name": "on-h1", "host": "h1", "state": "running", "state_detail": ""},
           {"name": "on-h2", "host": "h2", "state": "running", "state_detail": ""}]
    mark_unknown(h1, vms)
    assert [vm["state"] for vm in vms] == ["running", "unknown"]
    assert vms[1]["state_detail"] == "host h2 is unreachable; last known state: running"
    beat(h2)  # its worker is back
    assert states(h1)["h2"] == REACHABLE


def test_tasks_go_to_the_host_of_their_vm_and_only_its_scheduler_starts_them(make_host_runtime):
    h1, h2 = make_host_runtime("h1"), make_host_runtime("h2")
    register(h1)
    register(h2)
    add_vm(h1, "web", host="h2")
    assert task_host(h1, "vm.start", ["vm:web"]) == "h2"
    assert task_host(h1, "vm.start", ["vm:not-yet"]) == "h1"  # nothing to follow: the asking host
    assert task_host(h1, "vm.create", ["vm:new"], chosen="h2") == "h2"
    task = service.submit(h1, ALICE, "vm.start", {"name": "web"})
    assert task.host == "h2"
    assert dispatch.dispatch_pass(h1.engine, Limits(2, 2), WorkerIdentity("w1", "h1", 1)) == []
    claimed = dispatch.dispatch_pass(h2.engine, Limits(2, 2), WorkerIdentity("w2", "h2", 2))
    assert [task_id for task_id, _ in claimed] == [task.id]
    assert store.get_task(h1.engine, task.id).state == RUNNING


def test_a_host_that_does_not_know_a_kind_is_refused_it_with_its_versions(make_host_runtime):
    h1, h2 = make_host_runtime("h1"), make_host_runtime("h2")
    register(h1)
    register(h2)
    add_vm(h1, "web", host="h2")
    with h1.engine.begin() as connection:  # h2 runs an older bHype without vm.restart
        connection.execute(update(Host).where(col(Host.name) == "h2").values(task_kinds=["vm.start"]))
    with pytest.raises(ValidationErrors) as caught:
        service.submit(h1, ALICE, "vm.restart", {"name": "web"})
    assert caught.value.errors[0].path == "host"
    assert "host 'h2' does not know task kind 'vm.restart'" in caught.value.errors[0].message
    with Session(h1.engine) as db:
        assert db.exec(select(Task)).all() == []  # nothing queued
    message = unknown_kind(h2, "vm.teleport")
    assert "'vm.teleport' is not known on host 'h2'" in message and f"bhype-core {__version__}" in message


def test_a_task_for_an_unreachable_host_waits_and_says_so(make_host_runtime):
    h1, h2 = make_host_runtime("h1"), make_host_runtime("h2")
    register(h1)
    register(h2)
    add_vm(h1, "web", host="h2")
    task = service.submit(h1, ALICE, "vm.start", {"name": "web"})
    age_heartbeat(h1, "h2", 3600)
    assert mark_waiting(h1) == 1
    row = store.get_task(h1.engine, task.id)
    assert row.state == QUEUED
    assert row.progress_message.startswith("waiting: host h2 is unreachable (last heartbeat 36")
    assert mark_waiting(h1) == 0  # said once


def set_capacity(runtime, name: str, **values) -> None:
    with Session(runtime.engine) as db:
        row = db.get(Host, name)
        row.capacity = {**row.capacity, **values}
        db.add(row)
        db.commit()


def test_placement_picks_the_fitting_host_with_most_free_memory_or_says_why_none_fits(make_host_runtime):
    h1, h2, h3 = (make_host_runtime(name) for name in ("h1", "h2", "h3"))
    for runtime in (h1, h2, h3):
        register(runtime)
    gib = 1 << 30
    set_capacity(h1, "h1", memory_free=8 * gib)
    set_capacity(h1, "h2", memory_free=4 * gib)
    set_capacity(h1, "h3", memory_free=16 * gib, templates=[])  # most memory, but no templates
    with Session(h1.engine) as db:
        db.add(row_from(validate_switch({"name": "lan"}), host="h2"))
        db.commit()
    plain = validate_spec({"name": "a", "owner": "alice", "memory": "1G", "template": "debian"})
    on_lan = validate_spec({"name": "b", "owner": "alice", "memory": "1G", "nics": [{"switch": "lan"}]})
    assert place(h1, plain, "default") == "h1"
    assert place(h1, on_lan, "default") == "h2"
    assert place(h1, plain, "default", chosen="h2") == "h2"
    with pytest.raises(ValidationErrors) as caught:
        place(h1, on_lan, "default", chosen="h1")
    assert caught.value.errors[0].message == "no host fits this VM: h1: no switch lan"
    big = validate_spec({"name": "c", "owner": "alice", "memory": "64G", "template": "debian",
                         "nics": [{"switch": "lan"}]})
    with pytest.raises(ValidationErrors) as caught:
        place(h1, big, "fast")
    message = caught.value.errors[0].message
    assert "h1: no switch lan; no datastore fast; 8 GiB free memory, needs 64 GiB" in message
    assert "h3: no switch lan; no datastore fast; no template debian" in message
    with pytest.raises(ValidationErrors, match="no host named 'h9'"):
        place(h1, plain, "default", chosen="h9")


def test_each_host_consumes_its_own_queue_on_redis(make_host_runtime):
    runtime = make_host_runtime("h7")
    assert queue_name(runtime.settings, "redis") == "bhype.h7"
    assert queue_name(runtime.settings, "sqlite") == "bhype"


def test_a_refused_registration_is_retried_on_the_next_tick(monkeypatch):
    from sqlalchemy.exc import OperationalError

    from bhype_core.hosts import heartbeat

    calls: list[str] = []

    def flaky(runtime):
        calls.append("register")
        if len(calls) == 1:
            raise OperationalError("INSERT", {}, Exception("database is locked"))

    monkeypatch.setattr(heartbeat, "register", flaky)
    monkeypatch.setattr(heartbeat, "host_settings", lambda runtime: type("S", (), {"heartbeat_interval": 5})())
    beats: list[str] = []
    monkeypatch.setattr(heartbeat, "beat", lambda runtime: beats.append("beat"))
    monkeypatch.setattr(heartbeat, "mark_waiting", lambda runtime: 0)
    clock = iter([0.0, 1.0, 10.0])
    tick = heartbeat.start(object(), clock=lambda: next(clock))
    assert calls == ["register"]  # refused: no exception, tried again later
    tick()  # registers now, and the interval has not passed yet
    assert calls == ["register", "register"] and beats == []
    tick()
    assert beats == ["beat"]
