"""``Runner.pipe``: two argv lists joined by an OS pipe, locally and over a real sshd."""

from __future__ import annotations

import hashlib
import os
import sys
import uuid
from pathlib import Path

import pytest

from bhype_core.errors import CommandError
from bhype_core.host.audit import AuditRecord
from bhype_core.host.dryrun import DryRunRunner
from bhype_core.host.runner import ArgvError, LocalRunner

PY = sys.executable
# Writes N MiB of a deterministic pattern to stdout, then one line on stderr per MiB.
WRITE_PATTERN = (
    "import sys\n"
    "block = bytes(range(256)) * 4096\n"
    "for i in range(int(sys.argv[1])):\n"
    "    sys.stdout.buffer.write(block)\n"
    "    print(f'sent {i + 1}', file=sys.stderr, flush=True)\n"
)
SHA256_STDIN = "import hashlib, sys; print(hashlib.sha256(sys.stdin.buffer.read()).hexdigest())"


def pattern_digest(mebibytes: int) -> str:
    digest = hashlib.sha256()
    for _ in range(mebibytes):
        digest.update(bytes(range(256)) * 4096)
    return digest.hexdigest()


@pytest.fixture
def runner() -> LocalRunner:
    return LocalRunner(default_timeout=30, kill_grace=0.5)


def test_stream_arrives_whole_and_progress_lines_come_in_order(runner: LocalRunner) -> None:
    lines: list[str] = []
    result = runner.pipe([PY, "-c", WRITE_PATTERN, "64"], [PY, "-c", SHA256_STDIN], on_producer_line=lines.append)
    assert result.ok
    assert result.consumer.stdout.strip() == pattern_digest(64)
    assert lines == [f"sent {i}" for i in range(1, 65)]
    assert result.producer.stderr.splitlines()[-1] == "sent 64"  # kept as well as delivered
    assert result.producer.stdout == ""  # went to the consumer, not to us


def test_a_failing_producer_is_the_error(runner: LocalRunner) -> None:
    producer = [PY, "-c", "import sys; sys.stdout.write('partial'); print('cannot open snapshot', file=sys.stderr); "
                "sys.exit(2)"]
    with pytest.raises(CommandError) as caught:
        runner.pipe(producer, ["wc", "-c"])
    assert caught.value.argv == producer and caught.value.returncode == 2
    assert caught.value.stderr_tail == "cannot open snapshot"
    result = runner.pipe(producer, ["wc", "-c"], check=False)
    assert (result.producer.returncode, result.consumer.returncode) == (2, 0)
    assert result.consumer.stdout.strip() == "7"


def test_a_consumer_failing_early_names_the_consumer_and_stops_the_producer(runner: LocalRunner) -> None:
    consumer = [PY, "-c", "import sys; sys.stdin.buffer.read(10); print('bad stream header', file=sys.stderr); "
                "sys.exit(1)"]
    # The producer would write 10 GiB: it must die of the broken pipe, not run to the end.
    with pytest.raises(CommandError) as caught:
        runner.pipe([PY, "-c", WRITE_PATTERN, "10240"], consumer)
    error = caught.value
    assert error.argv == consumer and error.returncode == 1
    assert error.stderr.startswith("bad stream header")


def test_timeout_kills_both_sides_and_their_children(runner: LocalRunner, tmp_path: Path) -> None:
    marker = f"pipe-timeout-{uuid.uuid4().hex}"
    producer = ["sh", "-c", f"sleep 60 # {marker}"]
    consumer = ["sh", "-c", f"cat >/dev/null; sleep 60 # {marker}"]
    with pytest.raises(CommandError) as caught:
        runner.pipe(producer, consumer, timeout=0.5)
    assert caught.value.returncode is None and "timed out after 0.5s" in caught.value.reason
    survivors = LocalRunner().run(["pgrep", "-f", marker], check=False).stdout.split()
    assert [pid for pid in survivors if int(pid) != os.getpid()] == []


def test_a_missing_program_leaves_nothing_running(runner: LocalRunner) -> None:
    marker = f"pipe-missing-{uuid.uuid4().hex}"
    with pytest.raises(CommandError) as caught:
        runner.pipe(["sh", "-c", f"sleep 60 # {marker}"], ["/nonexistent/zfs", "receive"])
    assert caught.value.reason == "command not found: /nonexistent/zfs"
    assert LocalRunner().run(["pgrep", "-f", marker], check=False).stdout == ""


@pytest.mark.parametrize("producer, consumer", [([], ["cat"]), (["cat"], "cat"), ("echo hi | cat", ["cat"])])
def test_bad_argv_is_refused_before_anything_runs(runner: LocalRunner, producer, consumer) -> None:
    with pytest.raises(ArgvError):
        runner.pipe(producer, consumer)


def test_both_sides_are_audited(runner: LocalRunner) -> None:
    records: list[AuditRecord] = []
    runner.add_audit_sink(records.append)
    runner.pipe(["echo", "hello"], ["cat"])
    failing = ["sh", "-c", "cat >/dev/null; exit 1"]  # reads it all first: echo never meets a closed pipe
    with pytest.raises(CommandError):
        runner.pipe(["echo", "hello"], failing)
    assert [(r.argv, r.returncode) for r in records] == [
        (["echo", "hello"], 0), (["cat"], 0), (["echo", "hello"], 0), (failing, 1)]


def test_dry_run_shows_the_pipeline_and_runs_nothing(runner: LocalRunner, tmp_path: Path) -> None:
    shown: list[str] = []
    target = tmp_path / "never"
    dry = DryRunRunner(runner, echo=shown.append)
    result = dry.pipe(["zfs", "send", "tank/vm@s 1"], ["touch", str(target)])
    assert result.ok and result.producer.dry_run and result.consumer.dry_run
    assert shown == [f"would run: zfs send 'tank/vm@s 1' | touch {target}"]
    assert not target.exists()


# ------------------------------------------------------------------------------------------
# Over SSH: each side may run on the SSH host (the stream never enters this process).


@pytest.mark.sshd
def test_both_sides_on_the_ssh_host(sshd_server) -> None:
    ssh = sshd_server.runner(default_timeout=30, kill_grace=0.5)
    try:
        records: list[AuditRecord] = []
        ssh.add_audit_sink(records.append)
        result = ssh.pipe([PY, "-c", WRITE_PATTERN, "16"], [PY, "-c", SHA256_STDIN])
        assert result.consumer.stdout.strip() == pattern_digest(16)
        assert result.consumer.argv == [PY, "-c", SHA256_STDIN]  # the command, not its ssh wrapper
        assert {r.target for r in records} == {ssh.target}
        with pytest.raises(CommandError) as caught:
            ssh.pipe(["echo", "x"], [PY, "-c", "import sys; sys.stdin.read(); print('no space', file=sys.stderr); "
                                         "sys.exit(1)"])
        assert caught.value.returncode == 1 and caught.value.stderr_tail == "no space"
    finally:
        ssh.close()


@pytest.mark.sshd
def test_local_producer_remote_consumer(sshd_server, tmp_path: Path) -> None:
    ssh = sshd_server.runner(default_timeout=30, kill_grace=0.5)
    local = LocalRunner(default_timeout=30)
    target = tmp_path / "received"
    try:
        local_records: list[AuditRecord] = []
        remote_records: list[AuditRecord] = []
        local.add_audit_sink(local_records.append)
        ssh.add_audit_sink(remote_records.append)
        local.pipe([PY, "-c", WRITE_PATTERN, "8"], ["dd", f"of={target}", "bs=1M", "status=none"], to=ssh)
        assert hashlib.sha256(target.read_bytes()).hexdigest() == pattern_digest(8)
        assert [r.target for r in local_records] == ["local"]
        assert [r.target for r in remote_records] == [ssh.target]
    finally:
        ssh.close()


@pytest.mark.sshd
def test_an_unreachable_consumer_host_is_an_ssh_failure(sshd_server) -> None:
    from bhype_core.host.ssh import SSHRunner
    from bhype_core.testing.ports import free_port

    nowhere = SSHRunner("127.0.0.1", port=free_port(), identity=sshd_server.identity,
                        options=sshd_server.ssh_options, control_master=False)
    with pytest.raises(CommandError) as caught:
        LocalRunner().pipe(["echo", "x"], ["cat"], to=nowhere, check=False)
    assert caught.value.returncode == 255 and "ssh connection failed" in caught.value.reason


def test_a_failed_consumer_stops_a_producer_that_never_sees_a_broken_pipe(runner):
    # Like a remote `zfs send` behind ssh: ignores SIGPIPE and write errors, would run forever.
    producer = ["sh", "-c", "trap '' PIPE; while :; do echo data 2>/dev/null; sleep 0.05; done"]
    consumer = [PY, "-c", "import sys; sys.stdin.readline(); sys.stderr.write('cannot receive\\n'); sys.exit(3)"]
    result = runner.pipe(producer, consumer, timeout=60, check=False)  # a hang would be a timeout error
    assert result.consumer.returncode == 3 and result.producer.returncode != 0 and result.producer_stopped
    error = result.error()
    assert error.returncode == 3 and "cannot receive" in error.stderr


@pytest.mark.sshd
def test_a_failed_consumer_stops_a_producer_on_the_ssh_host(sshd_server) -> None:
    # A remote producer behind ssh (a zfs send) whose local consumer refuses the stream: the
    # consumer's error is the result, not "ssh connection failed" for the stopped producer.
    ssh = sshd_server.runner(default_timeout=30, kill_grace=0.5)
    producer = ["sh", "-c", "trap '' PIPE; while :; do echo data 2>/dev/null; sleep 0.05; done"]
    consumer = [PY, "-c", "import sys; sys.stdin.readline(); sys.stderr.write('cannot receive\\n'); sys.exit(3)"]
    with pytest.raises(CommandError, match="cannot receive") as caught:
        ssh.pipe(producer, consumer, to=LocalRunner(default_timeout=30), timeout=60)
    assert caught.value.returncode == 3
