"""The task fast path (issue 15): a worker thread claims and picks up a task in one commit and
runs it itself; a reporter's log line is one INSERT; early progress is coalesced into the
final row; the end and the undo journal go in one commit. Counted, not timed."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import event
from sqlmodel import Session

import bhype_core.builtins.models as core_models
import bhype_core.builtins.tasks as core_tasks
from bhype_core.auth.principal import Principal
from bhype_core.db.intent_models import TaskIntent
from bhype_core.db.migrate import upgrade
from bhype_core.db.task_models import FINAL_STATES, RUNNING
from bhype_core.plugins import make_plugin_manager
from bhype_core.runtime import build_runtime
from bhype_core.tasks import dispatch, intents, service, store
from bhype_core.tasks.plan import Limits
from bhype_core.tasks.reporter import RowReporter
from bhype_core.tasks.worker import start_in_process_worker
from bhype_core.testing.queue import queue_config, settings_from
from bhype_core.testing.waiting import wait_for

ALICE = Principal("alice", "operator")


@pytest.fixture
def runtime(tmp_path: Path):
    raw = queue_config(tmp_path / "data", "sqlite")
    raw["queue"]["workers"] = 2
    pm = make_plugin_manager(load_entrypoints=False, plugins=[("core_models", core_models), ("core_tasks", core_tasks)])
    runtime = build_runtime(settings_from(raw), pm)
    upgrade(runtime)
    return runtime


def ended(runtime, task_id: str):
    return wait_for(lambda: (row := store.get_task(runtime.engine, task_id)) is not None
                    and row.state in FINAL_STATES and row, "the task to end")


def test_a_trivial_task_costs_three_commits_in_the_worker(runtime) -> None:
    """claim + pick up (one UPDATE), the ping's log line (one INSERT), the end (one UPDATE; no
    DELETE: the ping recorded no undo journal): three commits, two UPDATEs; the ping's progress
    report is replaced by the final row (it was 6 commits and 4 UPDATEs before). Reads: "anything
    queued, a slot free?" is one SELECT before and one after the task, the pass reads the queue
    fronts (every column: the kept row is not read again) and the running tasks (it was 6.4 SELECTs
    per task and a DELETE before)."""
    handle = start_in_process_worker(runtime)
    try:
        ended(runtime, service.submit(runtime, ALICE, "core.ping", {}).id)  # warm up: start-up jobs settle
        counts: dict[str, int] = {}
        lock = threading.Lock()

        def count(what: str) -> None:
            if threading.current_thread() is threading.main_thread():
                return  # the test's own reads and the submission (the API's one INSERT)
            with lock:
                counts[what] = counts.get(what, 0) + 1

        listeners = [(runtime.engine, "commit", lambda conn: count("COMMIT")),
                     (runtime.engine, "before_cursor_execute",
                      lambda conn, cursor, statement, *rest: count(statement.split()[0].upper()))]
        for target, name, function in listeners:
            event.listen(target, name, function)
        try:
            rows = []
            for n in range(5):
                rows.append(ended(runtime, service.submit(runtime, ALICE, "core.ping", {"echo": n}).id))
                time.sleep(0.3)  # passes after the end (nothing queued) are read-only
        finally:
            for target, name, function in listeners:
                event.remove(target, name, function)
    finally:
        handle.stop(timeout=30)
    assert all(row.state == "succeeded" and row.progress == 100 for row in rows)
    assert all(row.started == row.picked_up for row in rows)  # claimed and picked up by one UPDATE
    assert counts.get("UPDATE", 0) == 2 * 5, counts
    assert counts.get("COMMIT", 0) <= 3 * 5, counts
    assert counts.get("INSERT", 0) == 5, counts  # the log line, without the max(seq) lookup
    assert counts.get("DELETE", 0) == 0, counts  # no journal was recorded: none is deleted
    # 4 per task; the scheduler thread's timer passes may add a read-only look or two.
    assert counts.get("SELECT", 0) <= 5 * 5, counts


def test_a_log_line_after_a_known_seq_is_one_insert_and_a_collision_takes_the_locked_path(runtime) -> None:
    task = store.insert_task(runtime.engine, store.new_task(owner="alice", kind="core.ping", arguments={}, locks=[]))
    assert store.append_log(runtime.engine, task.id, "first", after=0) == 1
    # another writer (the API's cancel line) takes seq 2 meanwhile
    assert store.append_log(runtime.engine, task.id, "from the API") == 2
    assert store.append_log(runtime.engine, task.id, "second", after=1) == 3  # collided, then locked path
    assert [(line.seq, line.message) for line in store.read_log(runtime.engine, task.id)] == [
        (1, "first"), (2, "from the API"), (3, "second")]
    assert store.last_log_seq(runtime.engine, task.id) == 3


def running_task(runtime):
    store.insert_task(runtime.engine, store.new_task(owner="alice", kind="core.ping", arguments={}, locks=[]))
    me = store.WorkerIdentity("w1", "host", 1)
    [(task_id, token)] = dispatch.dispatch_pass(runtime.engine, Limits(per_user=2, total=2), me, run_here=True)
    return task_id, token


def test_run_here_claims_and_picks_up_in_one_statement(runtime) -> None:
    task_id, token = running_task(runtime)
    row = store.get_picked_up(runtime.engine, task_id, token)
    assert row is not None and row.state == RUNNING and row.picked_up == row.started
    assert store.pick_up(runtime.engine, task_id, token, store.WorkerIdentity("w2", "h", 2)) is None  # not twice
    assert store.get_picked_up(runtime.engine, task_id, "another token") is None


def test_progress_is_coalesced_within_the_delay_and_written_after_it(runtime) -> None:
    task_id, token = running_task(runtime)
    reporter = RowReporter(runtime.engine, task_id, token, fresh=True, progress_delay=0.3)
    context = SimpleNamespace()
    for percent in (10, 20, 30):
        reporter.progress(context, SimpleNamespace(percent=percent, message=f"at {percent}"))
    assert store.get_task(runtime.engine, task_id).progress_message == "starting"  # not yet written
    row = wait_for(lambda: (r := store.get_task(runtime.engine, task_id)).progress == 30 and r, "the write")
    assert row.progress_message == "at 30"  # one write, the latest report
    reporter.progress(context, SimpleNamespace(percent=40, message="at 40"))
    reporter.close()  # the task ends: the pending report is dropped, never written after the end
    time.sleep(0.5)
    assert store.get_task(runtime.engine, task_id).progress == 30


def test_the_end_and_the_undo_journal_go_together(runtime) -> None:
    task_id, token = running_task(runtime)
    with Session(runtime.engine) as db:
        db.add(TaskIntent(task_id=task_id, action="test.undo", description="something", arguments={}))
        db.commit()
    assert len(intents.pending(runtime.engine, task_id)) == 1
    assert store.finish(runtime.engine, task_id, token, "succeeded", forget_intents=True)
    assert intents.pending(runtime.engine, task_id) == []  # gone in the same commit as the end
    assert not store.finish(runtime.engine, task_id, token, "failed", forget_intents=True)  # ended once


def test_a_journal_outlives_an_end_that_did_not_happen(runtime) -> None:
    """Recovery ended the task first: its journal stays for recovery's replay."""
    task_id, token = running_task(runtime)
    with Session(runtime.engine) as db:
        db.add(TaskIntent(task_id=task_id, action="test.undo", description="something", arguments={}))
        db.commit()
    assert not store.finish(runtime.engine, task_id, "a stale token", "succeeded", forget_intents=True)
    assert len(intents.pending(runtime.engine, task_id)) == 1
