"""The sampler over real processes standing in for VMs (found through the QEMU driver's own
status), then the API on what it recorded: current values, top, series, visibility per user,
thresholds raising and clearing events, a VM that died by itself, and a destroyed VM's history."""

from __future__ import annotations

import signal
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient
from standins import start_standin, stop_all

from bhype_core.api.app import create_app
from bhype_core.hookspecs import hookimpl
from bhype_core.tasks import MemoryReporter, TaskContext
from bhype_core.testing.api_auth import act_as
from bhype_core.vm.destroy import destroy_vm
from bhype_monitor.sampler import Monitor


class Collect:
    """A plugin that keeps every event delivered through ``bhype_notify``."""

    def __init__(self) -> None:
        self.events: list[Any] = []

    @hookimpl
    def bhype_notify(self, event: Any, runtime: Any) -> None:
        self.events.append(event)

    def kinds(self) -> list[tuple[str, str | None, str | None]]:
        return [(e.kind, e.subject, e.user) for e in self.events]


def ticks(monitor: Monitor, count: int) -> dict[str, Any]:
    snapshot: dict[str, Any] = {}
    for _ in range(count):
        time.sleep(1.0)  # rates need time between two reads; no assertion depends on how long
        snapshot = monitor.tick()
    return snapshot


@pytest.fixture
def lab(vm_monitor_runtime):
    events = Collect()
    runtime = vm_monitor_runtime(("collect", events), monitor={"cpu_high": 5, "cpu_clear": 2, "sustain": 2})
    standins = [start_standin(runtime, "burner", "alice", burn=True), start_standin(runtime, "idle", "alice"),
                start_standin(runtime, "bobs", "bob")]
    yield runtime, events, standins
    stop_all(standins)


def get(app: Any, path: str, user: str, role: str = "operator", status: int = 200) -> Any:
    act_as(app, user, role)
    with TestClient(app) as client:
        response = client.get(path)
    assert response.status_code == status, response.text
    return response.json()


def test_one_pass_sees_every_vm_and_the_api_shows_each_user_theirs(lab) -> None:
    runtime, events, standins = lab
    monitor = Monitor(runtime)
    first = monitor.tick()
    assert set(first["vms"]) == {s.uuid for s in standins}
    snapshot = ticks(monitor, 3)
    burner, idle = snapshot["vms"][standins[0].uuid], snapshot["vms"][standins[1].uuid]
    assert burner["pid"] == standins[0].process.pid and idle["pid"] == standins[1].process.pid
    assert burner["metrics"]["cpu_percent"] > idle["metrics"]["cpu_percent"]
    assert burner["metrics"]["mem_rss"] > 0 and burner["metrics"]["uptime"] >= 0
    host = snapshot["host"]["metrics"]
    assert 0 <= host["cpu_percent"] <= 100 and host["mem_total"] > host["mem_used"] > 0
    assert len(snapshot["host"]["cores"]) == snapshot["host"]["cpus"]

    app = create_app(runtime=runtime)
    mine = get(app, "/api/v1/monitor/current", "alice")
    assert set(mine["vms"]) == {"burner", "idle"} and mine["host"]["metrics"]["mem_total"] == host["mem_total"]
    assert set(get(app, "/api/v1/monitor/current", "root", "admin")["vms"]) == {"burner", "idle", "bobs"}
    top = get(app, "/api/v1/monitor/top?by=cpu", "alice")["vms"]
    assert [vm["name"] for vm in top][0] == "burner" and {vm["name"] for vm in top} == {"burner", "idle"}
    assert get(app, "/api/v1/monitor/top?by=memory", "bob")["vms"][0]["name"] == "bobs"
    get(app, "/api/v1/monitor/vms/bobs", "alice", status=404)  # another's VM is not found, not forbidden
    get(app, "/api/v1/monitor/vms/bobs/series", "alice", status=404)
    assert get(app, "/api/v1/monitor/vms/burner", "alice")["metrics"]["cpu_percent"] > 0
    now = time.time()
    series = get(app, f"/api/v1/monitor/vms/burner/series?from={now - 600}&to={now + 1}", "alice")
    assert series["tier"] == 0 and series["step"] == 10
    assert any(v is not None and v > 0 for v in series["metrics"]["cpu_percent"]["avg"])
    host_series = get(app, f"/api/v1/monitor/host/series?from={now - 600}&to={now + 1}&metrics=load1", "bob")
    assert list(host_series["metrics"]) == ["load1"]
    assert get(app, f"/api/v1/monitor/host/series?from={now}&to={now - 5}", "bob", status=422)


def test_thresholds_raise_clear_and_a_vm_that_died_is_reported(lab) -> None:
    runtime, events, standins = lab
    monitor = Monitor(runtime)
    monitor.tick()
    last = ticks(monitor, 3)
    assert last["vms"][standins[0].uuid]["metrics"]["cpu_percent"] > 5
    raised = [e for e in events.events if e.kind == "monitor.threshold.raised" and e.subject == "vm:burner"]
    assert len(raised) == 1 and raised[0].user == "alice" and raised[0].data["threshold"] == 5
    assert not [e for e in events.events if e.subject in ("vm:idle", "vm:bobs")]
    # Raised once, not at every sample; the state survives a new Monitor (a restarted worker).
    again = Monitor(runtime)
    again.tick()
    ticks(again, 2)
    assert len([e for e in events.events if e.kind == "monitor.threshold.raised" and e.subject == "vm:burner"]) == 1
    # Paused (SIGSTOP), the burner uses no CPU: its alert clears, once.
    standins[0].process.send_signal(signal.SIGSTOP)
    ticks(again, 3)
    cleared = [e for e in events.events if e.kind == "monitor.threshold.cleared" and e.subject == "vm:burner"]
    assert len(cleared) == 1 and cleared[0].user == "alice" and cleared[0].data["value"] < 2
    # Killed without a stop being asked for: reported as a VM that stopped unexpectedly.
    standins[0].process.kill()
    standins[0].process.wait()
    ticks(again, 1)
    died = [e for e in events.events if e.kind == "monitor.vm.stopped_unexpectedly"]
    assert [(e.subject, e.user, e.data["state"]) for e in died] == [("vm:burner", "alice", "crashed")]
    kinds = {kind.name for kind in runtime.registry.event_kinds}
    assert {"monitor.threshold.raised", "monitor.threshold.cleared", "monitor.pool.degraded",
            "monitor.vm.stopped_unexpectedly"} <= kinds


def test_a_destroyed_vm_loses_its_history(lab) -> None:
    runtime, events, standins = lab
    monitor = Monitor(runtime)
    monitor.tick()
    ticks(monitor, 1)
    history = monitor.history
    assert history is not None
    now = time.time()
    assert history.series(f"vm:{standins[2].uuid}", now - 600, now + 1)["metrics"]
    standins[2].process.kill()
    standins[2].process.wait()
    context = TaskContext(runtime, "destroy-1", "vm.destroy", None, MemoryReporter())
    destroy_vm(context, "bobs")
    assert history.series(f"vm:{standins[2].uuid}", now - 600, now + 1)["metrics"] == {}
    assert history.series(f"vm:{standins[1].uuid}", now - 600, now + 1)["metrics"]  # others keep theirs
