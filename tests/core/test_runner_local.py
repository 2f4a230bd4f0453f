"""The local host command runner, dry runs, auditing and make_runner, against real processes."""

from __future__ import annotations

import logging
import os
import sys
import time
from pathlib import Path

import pytest

from bhype_core.config import RunnerSettings
from bhype_core.errors import BhypeError, CommandError, ConfigError
from bhype_core.host.audit import AuditRecord, MemoryAuditSink, acting_as, current_actor
from bhype_core.host.dryrun import DryRunRunner
from bhype_core.host.runner import ArgvError, LocalRunner, Result, make_runner
from bhype_core.host.ssh import SSHRunner

PY = sys.executable


def py(code: str, *args: str) -> list[str]:
    """argv running a Python snippet (the interpreter of this test run, present everywhere)."""
    return [PY, "-c", code, *args]


@pytest.fixture
def runner() -> LocalRunner:
    return LocalRunner(default_timeout=30, kill_grace=0.5)


def process_gone(pid: int) -> bool:
    """True when ``pid`` no longer runs: absent, or a zombie nobody reaped yet (our PID 1
    does not reap orphans promptly, and a zombie runs nothing)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return True
    return state in ("Z", "X")


def wait_gone(pid: int, within: float = 10.0) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if process_gone(pid):
            return True
        time.sleep(0.05)
    return process_gone(pid)


# --- exit status, output, errors -------------------------------------------------------------


def test_success_captures_stdout_stderr_and_exit_status(runner: LocalRunner) -> None:
    result = runner.run(py("import sys; print('out'); print('err', file=sys.stderr)"))
    assert isinstance(result, Result)
    assert result.ok and result.returncode == 0
    assert result.stdout == "out\n" and result.stdout_bytes == b"out\n"
    assert result.stderr == "err\n" and result.stderr_bytes == b"err\n"
    assert result.argv[0] == PY and result.duration > 0 and not result.dry_run
    assert result.assert_success() is result


def test_nonzero_exit_raises_command_error_with_details(runner: LocalRunner) -> None:
    argv = py("import sys; print('partial'); print('disk on fire', file=sys.stderr); sys.exit(3)")
    with pytest.raises(CommandError) as caught:
        runner.run(argv)
    error = caught.value
    assert error.argv == argv
    assert error.returncode == 3
    assert "disk on fire" in error.stderr and error.stderr_tail == "disk on fire"
    assert error.stdout == "partial\n"
    assert "exited with status 3" in str(error) and "disk on fire" in str(error)
    assert error.to_dict()["error"]["returncode"] == 3


def test_check_false_returns_the_failure_and_assert_success_raises(runner: LocalRunner) -> None:
    result = runner.run(py("import sys; print('boom', file=sys.stderr); sys.exit(7)"), check=False)
    assert not result.ok and result.returncode == 7
    with pytest.raises(CommandError, match="boom") as caught:
        result.assert_success()
    assert caught.value.returncode == 7


def test_signal_death_is_a_negative_status(runner: LocalRunner) -> None:
    result = runner.run(py("import os, signal; os.kill(os.getpid(), signal.SIGKILL)"), check=False)
    assert result.returncode == -9


def test_command_not_found(runner: LocalRunner) -> None:
    with pytest.raises(CommandError) as caught:
        runner.run(["bhype-no-such-program-xyz", "arg"])
    assert caught.value.returncode is None
    assert "command not found: bhype-no-such-program-xyz" in str(caught.value)


def test_missing_working_directory_is_named(runner: LocalRunner, tmp_path: Path) -> None:
    missing = tmp_path / "nowhere"
    with pytest.raises(CommandError, match="working directory not found") as caught:
        runner.run(["true"], cwd=missing)
    assert str(missing) in str(caught.value)


@pytest.mark.parametrize(
    "argv",
    [[], (), "echo hi", b"echo", ["echo", 1], ["echo", Path("/tmp")], [None], ["", "x"], ["echo", "a\0b"]],
)
def test_bad_argv_is_refused_before_anything_runs(runner: LocalRunner, argv: object) -> None:
    with pytest.raises(ArgvError) as caught:
        runner.run(argv)  # type: ignore[arg-type]
    assert isinstance(caught.value, ValueError) and isinstance(caught.value, BhypeError)


def test_bad_argv_runs_nothing_and_is_not_audited(runner: LocalRunner, tmp_path: Path) -> None:
    sink = MemoryAuditSink()
    runner.add_audit_sink(sink)
    marker = tmp_path / "created"
    with pytest.raises(ArgvError, match=r"argv\[2\]"):
        runner.run(["touch", str(marker), 5])  # type: ignore[list-item]
    assert not marker.exists()
    assert sink.recent() == []


@pytest.mark.parametrize("kwargs", [{"timeout": 0}, {"timeout": -1}, {"input": 5}, {"env": {"A=B": "x"}},
                                    {"env": {"-i": "x"}}, {"env": {"A": 1}}])
def test_bad_options_are_refused(runner: LocalRunner, kwargs: dict) -> None:
    with pytest.raises(ArgvError):
        runner.run(["true"], **kwargs)


# --- input, environment, directory, output sizes and encodings ----------------------------


def test_stdin_as_str_is_utf8(runner: LocalRunner) -> None:
    text = "héllo wörld ✓\nsecond line\n"
    result = runner.run(["cat"], input=text)
    assert result.stdout == text
    assert result.stdout_bytes == text.encode("utf-8")


def test_stdin_as_bytes_is_passed_unchanged(runner: LocalRunner) -> None:
    data = bytes(range(256)) * 4
    assert runner.run(["cat"], input=data).stdout_bytes == data


def test_no_input_means_stdin_is_dev_null(runner: LocalRunner) -> None:
    # Never the caller's stdin: a command reading it would hang a worker or steal its input.
    assert runner.run(["readlink", "/proc/self/fd/0"]).stdout == "/dev/null\n"
    assert runner.run(["cat"], timeout=10).stdout == ""


def test_env_is_added_to_inherited_environment_and_cwd_applies(runner: LocalRunner, tmp_path: Path) -> None:
    code = "import os; print(os.getcwd()); print(os.environ['BHYPE_T']); print(os.environ['PATH'])"
    result = runner.run(py(code), env={"BHYPE_T": "a value with spaces"}, cwd=tmp_path)
    cwd, value, path = result.stdout.splitlines()
    assert Path(cwd).resolve() == tmp_path.resolve()
    assert value == "a value with spaces"
    assert path == os.environ["PATH"]


def test_large_outputs_on_both_pipes_do_not_deadlock(runner: LocalRunner) -> None:
    # 20 MB on stdout and 5 MB on stderr: far beyond a pipe buffer, so reading one pipe at a
    # time would block the child on the other.
    code = (
        "import sys\n"
        "for _ in range(20):\n"
        "    sys.stdout.buffer.write(b'x' * 1_000_000); sys.stderr.buffer.write(b'y' * 250_000)\n"
    )
    result = runner.run(py(code), timeout=120)
    assert len(result.stdout_bytes) == 20_000_000 and set(result.stdout_bytes) == {ord("x")}
    assert len(result.stderr_bytes) == 5_000_000 and len(result.stderr) == 5_000_000


def test_large_input_and_output_together(runner: LocalRunner) -> None:
    data = os.urandom(1_000_000) * 10  # 10 MB through cat both ways at once
    assert runner.run(["cat"], input=data, timeout=120).stdout_bytes == data


def test_non_utf8_output_is_replaced_not_fatal(runner: LocalRunner) -> None:
    raw = b"caf\xe9 \xff\xfe ok\n"
    code = f"import sys; sys.stdout.buffer.write({raw!r}); sys.stderr.buffer.write({raw!r}); sys.exit(2)"
    with pytest.raises(CommandError) as caught:
        runner.run(py(code))
    assert "\ufffd" in caught.value.stderr and "ok" in caught.value.stderr
    result = runner.run(py(code), check=False)
    assert result.stdout_bytes == raw
    assert result.stdout == raw.decode("utf-8", errors="replace")


# --- timeouts ------------------------------------------------------------------------------

CHILD_WITH_GRANDCHILD = """
import subprocess, sys, time
grandchild = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(600)'])
open(sys.argv[1], 'w').write(str(grandchild.pid))
print('started', flush=True)
print('working', file=sys.stderr, flush=True)
time.sleep(600)
"""


def test_timeout_kills_the_whole_process_group(runner: LocalRunner, tmp_path: Path) -> None:
    pid_file = tmp_path / "grandchild.pid"
    with pytest.raises(CommandError) as caught:
        # 6 s: the child must start Python and its grandchild first (slow on a loaded machine).
        runner.run(py(CHILD_WITH_GRANDCHILD, str(pid_file)), timeout=6)
    error = caught.value
    assert error.reason == "timed out after 6s" and error.returncode is None
    assert "timed out after 6s" in str(error)
    # The partial output written before the timeout is kept.
    assert error.stdout == "started\n" and error.stderr == "working\n"
    grandchild = int(pid_file.read_text())
    assert wait_gone(grandchild), f"grandchild {grandchild} survived the timeout"


def test_timeout_escalates_to_sigkill_when_sigterm_is_ignored(tmp_path: Path) -> None:
    runner = LocalRunner(kill_grace=0.3)
    pid_file = tmp_path / "stubborn.pid"
    code = (
        "import os, signal, sys, time\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "open(sys.argv[1], 'w').write(str(os.getpid()))\n"
        "time.sleep(120)\n"
    )
    with pytest.raises(CommandError, match="timed out"):
        runner.run(py(code, str(pid_file)), timeout=6)  # time to ignore SIGTERM before it comes
    assert wait_gone(int(pid_file.read_text()))


def test_default_timeout_comes_from_the_runner(tmp_path: Path) -> None:
    runner = LocalRunner(default_timeout=1, kill_grace=0.3)
    with pytest.raises(CommandError, match="timed out after 1s"):
        runner.run(["sleep", "60"])


# --- auditing ------------------------------------------------------------------------------


def test_audit_records_carry_user_and_task_from_the_context(runner: LocalRunner) -> None:
    records: list[AuditRecord] = []
    runner.add_audit_sink(records.append)
    with acting_as(user="alice", task_id="task-42") as actor:
        assert current_actor() == actor
        runner.run(["echo", "hello world"])
        with acting_as(task_id="task-43"):  # the user is inherited
            runner.run(py("import sys; print('nope', file=sys.stderr); sys.exit(4)"), check=False)
    runner.run(["true"])
    first, second, third = records
    assert (first.user, first.task_id, first.target) == ("alice", "task-42", "local")
    assert first.argv == ["echo", "hello world"] and first.command == "echo 'hello world'"
    assert first.returncode == 0 and not first.dry_run and first.error == ""
    assert (second.user, second.task_id, second.returncode) == ("alice", "task-43", 4)
    assert second.stderr_tail == "nope"
    assert (third.user, third.task_id) == (None, None)
    assert first.to_dict()["time"].endswith("+00:00")


def test_failures_without_exit_status_are_audited(runner: LocalRunner) -> None:
    records: list[AuditRecord] = []
    runner.add_audit_sink(records.append)
    with acting_as(user="bob", task_id="t1"):
        with pytest.raises(CommandError):
            runner.run(["bhype-no-such-program-xyz"])
        with pytest.raises(CommandError):
            runner.run(["sleep", "30"], timeout=0.5)
    missing, timed_out = records
    assert missing.returncode is None and "command not found" in missing.error and missing.user == "bob"
    assert timed_out.returncode is None and timed_out.error == "timed out after 0.5s"


def test_a_failing_sink_does_not_break_the_command(
    runner: LocalRunner, caplog: pytest.LogCaptureFixture
) -> None:
    def broken(record: AuditRecord) -> None:
        raise RuntimeError("sink is down")

    good = MemoryAuditSink(maxlen=2)
    runner.add_audit_sink(broken)
    runner.add_audit_sink(good)
    with caplog.at_level(logging.INFO, logger="bhype.host.audit"):
        result = runner.run(["echo", "still works"])
    assert result.stdout == "still works\n"
    assert [r.argv for r in good.recent()] == [["echo", "still works"]]
    assert any("audit sink" in r.getMessage() and r.exc_info for r in caplog.records)
    runner.remove_audit_sink(broken)


def test_every_command_is_logged_with_who_caused_it(
    runner: LocalRunner, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="bhype.host.audit"), acting_as(user="carol", task_id="t9"):
        runner.run(["echo", "x y"])
    (record,) = [r for r in caplog.records if r.name == "bhype.host.audit"]
    message = record.getMessage()
    assert "user=carol" in message and "task=t9" in message and "echo 'x y'" in message
    assert record.bhype_audit["argv"] == ["echo", "x y"]  # type: ignore[attr-defined]


def test_memory_sink_keeps_only_the_newest(runner: LocalRunner) -> None:
    sink = MemoryAuditSink(maxlen=2)
    runner.add_audit_sink(sink)
    for word in ("one", "two", "three"):
        runner.run(["echo", word])
    assert [r.argv[1] for r in sink.recent()] == ["two", "three"]
    assert [r.argv[1] for r in sink.recent(1)] == ["three"]


# --- dry run -------------------------------------------------------------------------------


def test_dry_run_runs_nothing_and_says_what_it_would_run(tmp_path: Path) -> None:
    marker = tmp_path / "would be created"
    shown: list[str] = []
    runner = DryRunRunner(LocalRunner(), echo=shown.append)
    records: list[AuditRecord] = []
    runner.add_audit_sink(records.append)
    with acting_as(user="dave", task_id="t7"):
        result = runner.run(["touch", str(marker)])
    assert not marker.exists()
    assert result.dry_run and result.ok and result.stdout == "" and result.stdout_bytes == b""
    assert shown == [f"would run: touch '{marker}'"]
    (record,) = records
    assert record.dry_run and record.user == "dave" and record.target == "local"
    # A command that would fail is not run either, so it cannot fail.
    assert runner.run(["false"]).returncode == 0
    with pytest.raises(ArgvError):
        runner.run([])


# --- make_runner ---------------------------------------------------------------------------


def test_make_runner_local() -> None:
    runner = make_runner(RunnerSettings(target="local", default_timeout=7))
    assert isinstance(runner, LocalRunner) and runner.default_timeout == 7
    assert runner.run(["echo", "ok"]).stdout == "ok\n"


def test_make_runner_ssh_target(tmp_path: Path) -> None:
    identity = tmp_path / "id"
    settings = RunnerSettings(
        target="ssh://admin@192.0.2.10:2222", ssh_identity=identity, ssh_options=["Compression=yes"]
    )
    runner = make_runner(settings)
    assert isinstance(runner, SSHRunner)
    assert (runner.user, runner.host, runner.port, runner.identity) == ("admin", "192.0.2.10", 2222, identity)
    assert runner.target == "ssh://admin@192.0.2.10:2222"
    argv = runner.ssh_argv("true")
    assert argv[:3] == ["ssh", "-o", "Compression=yes"] and argv[-3:] == ["admin@192.0.2.10", "--", "true"]
    assert ["-i", str(identity)] == argv[argv.index("-i"):argv.index("-i") + 2]
    assert make_runner(RunnerSettings(target="ssh://[::1]")).target.endswith("@[::1]:22")


def test_make_runner_dry_run_wraps_and_never_connects(tmp_path: Path) -> None:
    # 192.0.2.0/24 is TEST-NET-1: a dry run must not even try to reach it.
    runner = make_runner(RunnerSettings(target="ssh://root@192.0.2.1:22", dry_run=True))
    assert isinstance(runner, DryRunRunner) and isinstance(runner.inner, SSHRunner)
    result = runner.run(["zfs", "destroy", "tank/vm"])
    assert result.dry_run and runner.target == "ssh://root@192.0.2.1:22"


@pytest.mark.parametrize(
    "target", ["remote", "ftp://host", "ssh://", "ssh://host:notaport", "ssh://host:99999",
               "ssh://u:pw@host", "ssh://host/path", "ssh://-oProxyCommand=x"]
)
def test_make_runner_bad_target_names_the_key(target: str) -> None:
    with pytest.raises(ConfigError, match=r"runner\.target"):
        make_runner(RunnerSettings(target=target))
