"""A burst of 1,000 events: the raising thread never waits for the network (events are
queued while the sender is held), the per-kind rate limit holds at the real receiver, and
an event that does not fit the queue is dropped with a log line, not silently."""

from __future__ import annotations

import logging
import threading

from bhype_core.events import Event
from bhype_core.testing.waiting import wait_for
from bhype_snmp import sender as sender_module
from bhype_snmp.sender import sender_for

from .kit import add_manager, snmptrapd

COMMUNITY = "burst-community"


def gate_the_sender(monkeypatch):
    """Hold the sender thread at its first manager lookup until the returned event is set;
    records which threads looked managers up."""
    gate, seen = threading.Event(), []
    real = sender_module.store.list_managers

    def held(runtime, **kwargs):
        seen.append(threading.get_ident())
        assert gate.wait(120), "the test never opened the gate"
        return real(runtime, **kwargs)

    monkeypatch.setattr(sender_module.store, "list_managers", held)
    return gate, seen


def raise_in_a_task_thread(runtime, events):
    """Deliver ``events`` from a thread standing in for a running task; returns the thread."""
    thread = threading.Thread(target=lambda: [runtime.notify(event) for event in events], name="raising-task")
    thread.start()
    return thread


def test_a_burst_is_queued_without_waiting_and_rate_limited_per_kind(snmp_runtime, tmp_path, monkeypatch, caplog):
    runtime = snmp_runtime(rate_limit=5, rate_window=3600)
    events = [Event(kind="vm.crashed" if n % 2 else "task.failed", message=f"flap {n}", severity="error",
                    subject="vm:flappy") for n in range(1000)]
    with snmptrapd(tmp_path, f"authCommunity log {COMMUNITY}\n") as trapd:
        add_manager(runtime, name="nms", host="127.0.0.1", port=trapd.port, community=COMMUNITY)
        add_manager(runtime, name="quiet", host="127.0.0.1", port=trapd.port, community=COMMUNITY, rate_limit=1,
                    min_severity="critical")  # filters every one of these out
        gate, seen = gate_the_sender(monkeypatch)
        task = raise_in_a_task_thread(runtime, events)
        # All 1,000 are accepted while the sender cannot send a single one.
        wait_for(lambda: not task.is_alive(), "the raising thread to finish while the sender is held")
        sender = sender_for(runtime)
        assert sender.stats["queued"] == 1000 and sender.stats["dropped"] == 0
        wait_for(lambda: seen, "the sender thread to take the first event")
        assert trapd.notifications() == [] and task.ident not in seen
        with caplog.at_level(logging.WARNING, logger="bhype_snmp.sender"):
            gate.set()
            assert sender.flush(120)
        received = trapd.wait_notifications(10)
        assert sender.stats["sent"] == 10
    kinds = sorted(line.split("bhypeEventKind.0 = STRING: ")[1].split("\t")[0] for line in received)
    assert len(received) == 10 and kinds == ["task.failed"] * 5 + ["vm.crashed"] * 5
    # The first five of each kind went out, in order; the other 990 were counted, not sent.
    texts = [line.split("bhypeEventText.0 = STRING: ")[1].split("\t")[0] for line in received]
    assert sorted(texts, key=lambda t: int(t.split()[1])) == [f"flap {n}" for n in range(10)]
    assert sender.stats["suppressed"] == 990 and sender.stats["filtered"] == 1000
    assert "more than 5 task.failed events in 3600s for manager nms" in caplog.text


def test_an_event_that_does_not_fit_the_queue_is_dropped_and_logged(snmp_runtime, monkeypatch, caplog):
    runtime = snmp_runtime(queue_size=10)
    gate, _ = gate_the_sender(monkeypatch)
    with caplog.at_level(logging.ERROR, logger="bhype_snmp.sender"):
        task = raise_in_a_task_thread(runtime, [Event(kind="task.failed", message=f"e{n}", severity="error")
                                                for n in range(100)])
        wait_for(lambda: not task.is_alive(), "the raising thread to finish")
    sender = sender_for(runtime)
    gate.set()
    assert sender.flush(60)
    # The sender holds one event; ten wait in the queue; the rest were refused, each logged.
    assert sender.stats["queued"] + sender.stats["dropped"] == 100 and sender.stats["dropped"] >= 89
    assert caplog.text.count("SNMP queue full (10 events): event task.failed") == sender.stats["dropped"]


EXITING = """
import pathlib, sys
import bhype_snmp.plugin
from bhype_core.builtins import models
from bhype_core.db.migrate import upgrade
from bhype_core.events import Event
from bhype_core.plugins import make_plugin_manager
from bhype_core.runtime import build_runtime
from bhype_core.testing import make_settings
from bhype_snmp.sender import sender_for

pm = make_plugin_manager(load_entrypoints=False, plugins=[("core_models", models), ("snmp", bhype_snmp.plugin)])
runtime = build_runtime(make_settings(pathlib.Path(sys.argv[1])), pm)
upgrade(runtime)
runtime.notify(Event(kind="task.failed", message="x", severity="error"))
assert sender_for(runtime).flush(60)
print("leaving")
"""


def test_a_process_with_an_idle_sender_exits(tmp_path):
    # The sender thread waits for work without parking a thread in a blocking get, which
    # would hold up the interpreter's exit (a worker that never stops). The timeout is a bound.
    import subprocess
    import sys

    result = subprocess.run([sys.executable, "-c", EXITING, str(tmp_path / "data")], capture_output=True,
                            text=True, timeout=120)
    assert (result.returncode, result.stdout) == (0, "leaving\n"), result.stderr
