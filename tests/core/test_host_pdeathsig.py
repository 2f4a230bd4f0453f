"""Host commands die with the process that runs them (issue 11): a kill -9 of a real Python
process running ``LocalRunner.run`` (and ``pipe``) takes its commands with it, while a process
that clears its parent-death signal (the VM supervisor does) outlives it. The audit trail writes
a command when it starts, so one cut off by the kill is still attributable."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from bhype_core.host import pdeathsig
from bhype_core.host.audit import RUNNING, acting_as
from bhype_core.host.runner import LocalRunner
from bhype_core.testing.waiting import running, wait_for

pytestmark = pytest.mark.skipif(not pdeathsig.supported(), reason="no parent-death signal on this system")



def read_pid(path: Path) -> int | None:
    text = path.read_text().strip() if path.exists() else ""
    return int(text) if text.isdigit() else None


def run_in_child(code: str) -> subprocess.Popen[bytes]:
    """A real Python process running ``code`` (the stand-in for the worker)."""
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code)])


@pytest.mark.parametrize("how", ["run", "pipe"])
def test_commands_die_with_the_process_that_runs_them(tmp_path, how):
    pid_file = tmp_path / "pid"
    command = ["sh", "-c", f'echo $$ > {pid_file}; exec sleep 600']
    call = (f"runner.run({command!r}, timeout=900)" if how == "run"
            else f"runner.pipe({command!r}, ['cat'], timeout=900)")
    parent = run_in_child(f"""
        from bhype_core.host.runner import LocalRunner
        runner = LocalRunner()
        {call}
    """)
    try:
        sleeper = wait_for(lambda: read_pid(pid_file), "the command to start")
        assert running(sleeper)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        wait_for(lambda: not running(sleeper), "the command to die with its parent", timeout=30)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_a_process_that_clears_the_signal_outlives_its_parent(tmp_path):
    pid_file = tmp_path / "pid"
    survivor = f"""
        import os, time
        from bhype_core.host.pdeathsig import clear_parent_death_signal
        clear_parent_death_signal()  # what the VM supervisor does first
        open({str(pid_file)!r}, "w").write(str(os.getpid()))
        time.sleep(600)
    """
    parent = run_in_child(f"""
        import sys
        from bhype_core.host.runner import LocalRunner
        LocalRunner().run([sys.executable, "-c", {textwrap.dedent(survivor)!r}], timeout=900)
    """)
    pid = None
    try:
        pid = wait_for(lambda: read_pid(pid_file), "the survivor to start")
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        # Wait until it has been re-parented (its parent is gone), then check it still runs.
        wait_for(lambda: f" {parent.pid} " not in Path(f"/proc/{pid}/stat").read_text().split(")")[1][:40],
                 "the survivor to be re-parented", timeout=30)
        assert running(pid)
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        if pid is not None and running(pid):
            os.kill(pid, signal.SIGKILL)  # the survivor this test started


class StartRecorder:
    """An audit sink that takes start records too."""

    def __init__(self) -> None:
        self.events: list[tuple[str, object]] = []

    def started(self, record) -> None:
        self.events.append(("started", record))

    def __call__(self, record) -> None:
        self.events.append(("ended", record))


def test_the_trail_gets_a_command_when_it_starts_and_again_when_it_ends():
    runner, recorder, plain = LocalRunner(), StartRecorder(), []
    runner.add_audit_sink(recorder)
    runner.add_audit_sink(plain.append)  # a sink without started(): only ended records
    with acting_as(user="alice", task_id="t-1"):
        runner.run(["true"])
    (kind1, start), (kind2, end) = recorder.events
    assert (kind1, start.state, start.returncode) == ("started", RUNNING, None)
    assert (start.user, start.task_id) == ("alice", "t-1")
    assert (kind2, end.state, end.returncode) == ("ended", "finished", 0)
    assert start.command_id == end.command_id != ""
    assert plain == [end]


def test_the_database_row_is_written_running_and_completed(db_engine, bhype_runtime):
    from sqlmodel import Session, select

    from bhype_core.db.models import HostCommand, mark_commands_interrupted

    seen = []

    def look(record) -> None:  # runs after the database sink wrote the start row
        with Session(db_engine) as db:
            seen.extend((row.state, row.returncode) for row in db.exec(select(HostCommand)))

    runner = bhype_runtime.runner
    runner.add_audit_sink(type("Look", (), {"started": staticmethod(look), "__call__": lambda self, r: None})())
    with acting_as(user="alice", task_id="t-2"):
        runner.run([sys.executable, "-c", "raise SystemExit(4)"], check=False)
    assert seen == [("running", None)]
    with Session(db_engine) as db:
        (row,) = db.exec(select(HostCommand)).all()
    assert (row.state, row.returncode, row.task_id, row.user) == ("finished", 4, "t-2", "alice")

    # A start with no end (the worker died): recovery marks it interrupted.
    from bhype_core.db.models import record_host_command
    from bhype_core.host.audit import start_record

    with acting_as(user="alice", task_id="t-3"):
        record_host_command(db_engine, start_record(target="local", argv=["qemu-img", "convert"], command_id="c" * 32))
    assert mark_commands_interrupted(db_engine, "t-3") == 1
    with Session(db_engine) as db:
        cut = db.exec(select(HostCommand).where(HostCommand.task_id == "t-3")).one()
    assert (cut.state, cut.returncode, cut.argv) == ("interrupted", None, ["qemu-img", "convert"])
