"""The pure parts: an event's var-binds (any kind, VM and task found in subject or data, texts
cut to DisplayString's size, DateAndTime), the link, the rate limiter's window, the agent's
snapshot (states, uptime, indexes, memory as stored)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from bhype_core.events import Event
from bhype_snmp import oids
from bhype_snmp.agent_values import VmRow, snapshot, uptime_ticks, vm_rows
from bhype_snmp.notification import build, date_and_time, link_of, task_id_of, vm_of
from bhype_snmp.ratelimit import RateLimiter

WHEN = datetime(2026, 12, 7, 17, 5, 9, 300000, tzinfo=UTC)


def test_varbinds_of_any_kind_in_mib_order():
    event = Event(kind="backup.verify_mismatch", message="x" * 400, severity="warning", subject="task:17",
                  user="bob", data={"vm": "web1"}, time=WHEN)
    notification = build(event, host="h", web_url="https://ui.example/", vm_uuid="u" * 36)
    names = [name for name, _ in notification.varbinds]
    assert names == list(oids.EVENT_OBJECTS)  # every object of bhypeEvent, in the MIB's order
    values = dict(notification.varbinds)
    assert values["bhypeEventKind"] == "backup.verify_mismatch" and values["bhypeEventSeverity"] == 2
    assert values["bhypeEventVmName"] == "web1" and values["bhypeEventTaskId"] == 17
    assert len(values["bhypeEventText"]) == 255 and values["bhypeEventText"].endswith("…")
    assert values["bhypeEventLink"] == "https://ui.example/ui/tasks/17"
    assert values["bhypeEventTime"] == bytes([0x07, 0xEA, 12, 7, 17, 5, 9, 3, ord("+"), 0, 0])
    assert notification.oid == oids.EVENT_NOTIFICATION and notification.kind == "backup.verify_mismatch"


def test_vm_task_and_link_lookups():
    assert vm_of(Event(kind="vm.crashed", message="", subject="vm:db 1")) == "db 1"
    assert vm_of(Event(kind="zfs.pool_health", message="", subject="pool:tank")) == ""
    assert task_id_of(Event(kind="task.failed", message="", data={"task_id": "12"})) == 12
    assert task_id_of(Event(kind="task.failed", message="", data={"task_id": "abc"})) == 0
    assert task_id_of(Event(kind="task.failed", message="", data={"task_id": 2**40})) == 0  # not Unsigned32
    assert link_of("", "web1", 0) == ""
    assert link_of("https://ui/", "db 1", 0) == "https://ui/ui/vms/db%201"
    assert link_of("https://ui", "", 0) == "https://ui/ui/"
    assert date_and_time(datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC) + timedelta(hours=0))[:2] == b"\x07\xea"


def test_rate_limiter_window_and_suppressed_count():
    now = [0.0]
    limiter = RateLimiter(60, clock=lambda: now[0])
    key = ("nms", "vm.crashed")
    assert [limiter.allow(key, 2) for _ in range(5)] == [True, True, False, False, False]
    assert limiter.allow(("nms", "task.failed"), 2)  # another kind has its own budget
    assert limiter.suppressed_total() == {key: 3}
    now[0] = 60.0  # the first two left the window
    assert limiter.allow(key, 2) and limiter.take_suppressed(key) == 3 and limiter.take_suppressed(key) == 0
    assert all(limiter.allow(("x", "y"), 0) for _ in range(100))  # 0: no limit


def test_snapshot_states_uptime_and_indexes():
    now = WHEN
    rows = [VmRow(1, "a", "u" * 36, "running", "alice", 2, 2 << 30, now - timedelta(seconds=90)),
            VmRow(2, "b", "v" * 36, "crashed", "bob", 1, 0, now),
            VmRow(3, "c", "w" * 36, "weird", "bob", 1, 0, now),
            VmRow(0, "zero", "x" * 36, "stopped", "bob", 1, 0, now)]  # not indexable: left out
    values = dict(snapshot(rows, host="h", facts={"version": "0.1.0", "cpus": 8, "memory": 16 << 30}, now=now))
    state = (*oids.VM_ENTRY, oids.VM_COLUMNS["bhypeVmState"])
    assert values[(*state, 1)] == ("integer", 3) and values[(*state, 2)] == ("integer", 5)
    assert values[(*state, 3)] == ("integer", 6) and (*state, 4) not in values
    assert values[(*oids.VM_ENTRY, oids.VM_COLUMNS["bhypeVmUptime"], 1)] == ("ticks", 9000)
    assert values[(*oids.VM_ENTRY, oids.VM_COLUMNS["bhypeVmMemory"], 1)] == ("gauge", 2048)
    assert values[(*oids.HOST_OBJECTS["bhypeHostVmsOther"], 0)] == ("gauge", 2)
    assert values[(*oids.HOST_OBJECTS["bhypeHostMemory"], 0)] == ("gauge", 16384)
    assert uptime_ticks(rows[1], now) == 0


def test_vm_rows_read_the_stored_spec_as_written():
    record = SimpleNamespace(id=4, name="n", uuid="u", state="stopped", owner="o", updated=WHEN,
                             spec={"cpus": {"count": 4}, "memory": "1.5G"})
    broken = SimpleNamespace(id=5, name="m", uuid="u", state="stopped", owner="o", updated=WHEN,
                             spec={"cpus": "many", "memory": "lots"})
    first, second = vm_rows([record, broken])
    assert (first.vcpus, first.memory) == (4, 1536 << 20)
    assert (second.vcpus, second.memory) == (0, 0)  # shown, with zeros, rather than hidden
