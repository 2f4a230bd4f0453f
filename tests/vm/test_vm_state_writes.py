"""State-cache writes on SQLite with another process writing: why ``vm.start`` once failed with
"database is locked" after its VM was already running, and the fix.

The VM layer reads a row and then writes it (``get_vm`` + ``set_state``). In a deferred
transaction SQLite refuses that first write at once, without waiting for the busy timeout,
when another connection committed after the read (WAL snapshot rule); the API, the task log
and a second worker thread commit all the time. A ``session(..., write=True)`` takes the write
lock when it begins, so the others wait for it instead. The other writer here is a plain
sqlite3 connection, as another process would be.
"""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy.exc import OperationalError

from bhype_core.db.session import session
from bhype_core.vm.create import create_vm
from bhype_core.vm.records import get_vm, set_state


def other_process_write(runtime, detail: str) -> None:
    """Commit a change to web1's row from another connection that waits at most 0.1 s."""
    connection = sqlite3.connect(runtime.engine.url.database, timeout=0.1, isolation_level=None)
    try:
        connection.execute("UPDATE core_vm SET state_detail = ? WHERE name = 'web1'", (detail,))
    finally:
        connection.close()


@pytest.fixture
def web1(vm_runtime, task_context):
    create_vm(task_context(vm_runtime, "vm.create"), "web1", overrides={"boot": "grub"})
    return vm_runtime


def test_a_deferred_read_then_write_fails_when_another_writer_commits_in_between(web1):
    with pytest.raises(OperationalError, match="database is locked"):
        with session(web1) as db:
            row = get_vm(db, "web1")
            other_process_write(web1, "from the other process")  # nothing stops it
            set_state(db, row, "running", "from the task")
    with session(web1) as db:
        assert get_vm(db, "web1").state_detail == "from the other process"


def test_a_write_session_holds_the_lock_from_its_start_and_its_write_lands(web1):
    with session(web1, write=True) as db:
        row = get_vm(db, "web1")
        with pytest.raises(sqlite3.OperationalError, match="database is locked"):
            other_process_write(web1, "from the other process")  # must wait for us: gives up
        set_state(db, row, "running", "from the task")
    with session(web1) as db:
        assert get_vm(db, "web1").state_detail == "from the task"
    other_process_write(web1, "after us")  # the lock is free again
