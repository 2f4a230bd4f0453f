"""``Runner.run(..., on_line=...)``: output lines reach the caller while the command runs, on the
local runner and through a real OpenSSH server, with timeouts and whole captured output kept.

"While it runs" is proven by a handshake, not by timing: the command writes a line and then
waits for a file that only the callback creates on seeing that line; without streaming it would
wait until its timeout."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from bhype_core.errors import CommandCancelled, CommandError
from bhype_core.host.dryrun import DryRunRunner
from bhype_core.host.runner import LocalRunner, Result, Runner
from bhype_core.testing.sshd import SshdServer

PY = sys.executable

HANDSHAKE = r"""
import os, sys, time
flag = sys.argv[1]
print("first", flush=True)
print("warn: on stderr", file=sys.stderr, flush=True)
while not os.path.exists(flag):   # only the caller's on_line creates it
    time.sleep(0.02)
sys.stdout.write("bar 50%\rbar 100%\r\n")
print("last line without end", end="", flush=True)
"""


@pytest.fixture(params=["local", "ssh"])
def runner(request) -> Runner:
    if request.param == "local":
        return LocalRunner(default_timeout=30, kill_grace=0.5)
    request.applymarker(pytest.mark.sshd)
    server: SshdServer = request.getfixturevalue("sshd_server")
    return server.runner(default_timeout=30, kill_grace=0.5)


def test_lines_arrive_while_the_command_runs_and_the_result_keeps_everything(runner: Runner, tmp_path: Path) -> None:
    flag = tmp_path / "seen-first"
    seen: list[tuple[str, str]] = []

    def on_line(stream: str, line: str) -> None:
        seen.append((stream, line))
        if line == "first":
            flag.touch()

    result = runner.run([PY, "-c", HANDSHAKE, str(flag)], timeout=20, on_line=on_line)
    assert result.ok
    assert [entry for entry in seen if entry[0] == "stdout"] == [
        ("stdout", "first"), ("stdout", "bar 50%"), ("stdout", "bar 100%"), ("stdout", "last line without end")]
    assert ("stderr", "warn: on stderr") in seen
    assert result.stdout == "first\nbar 50%\rbar 100%\r\nlast line without end"
    assert result.stderr == "warn: on stderr\n"


def test_a_timeout_still_kills_the_command_and_keeps_the_partial_output(runner: Runner, tmp_path: Path) -> None:
    seen: list[str] = []
    code = "import time; print('started', flush=True); time.sleep(60)"
    with pytest.raises(CommandError, match="timed out after 2s") as caught:
        runner.run([PY, "-c", code], timeout=2, on_line=lambda stream, line: seen.append(line))
    assert seen == ["started"]
    assert caught.value.stdout == "started\n"


def test_cancel_stops_the_process_group_and_keeps_the_output_so_far(runner: Runner, tmp_path: Path) -> None:
    # The cancel check answers true once the callback has seen "started": no timing involved. A
    # command that ignored the cancel would end with the 60 s timeout (CommandError, not Cancelled).
    pid_file = tmp_path / "child.pid"
    code = ("import subprocess, sys, time; child = subprocess.Popen(['sleep', '60']); "
            "open(sys.argv[1], 'w').write(str(child.pid)); print('started', flush=True); time.sleep(60)")
    seen: list[str] = []
    with pytest.raises(CommandCancelled) as caught:
        runner.run([PY, "-c", code, str(pid_file)], timeout=60, input="ignored",
                   on_line=lambda stream, line: seen.append(line), cancel=lambda: "started" in seen)
    assert seen == ["started"] and caught.value.stdout == "started\n"
    if isinstance(runner, LocalRunner):  # the whole group went, the grandchild too
        try:
            stat = Path(f"/proc/{int(pid_file.read_text())}/stat").read_text()
        except FileNotFoundError:
            stat = "gone) X"
        # Killed: gone, or a zombie its new parent has not reaped yet (state after the ")").
        assert stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def test_a_failing_command_raises_with_its_output_after_streaming_it(runner: Runner) -> None:
    seen: list[tuple[str, str]] = []
    code = "import sys; print('half done'); print('disk full', file=sys.stderr); sys.exit(3)"
    with pytest.raises(CommandError) as caught:
        runner.run([PY, "-c", code], on_line=lambda stream, line: seen.append((stream, line)))
    assert caught.value.returncode == 3 and "disk full" in caught.value.stderr
    assert sorted(seen) == [("stderr", "disk full"), ("stdout", "half done")]


def test_stdin_is_fed_while_lines_stream(runner: Runner) -> None:
    seen: list[str] = []
    code = "import sys; [print(line.strip().upper(), flush=True) for line in sys.stdin]"
    result = runner.run([PY, "-c", code], input="a\nb\n" * 5000, on_line=lambda stream, line: seen.append(line))
    assert seen == ["A", "B"] * 5000 and result.stdout.count("\n") == 10000


def test_a_callback_that_raises_kills_the_command() -> None:
    pids: list[int] = []
    code = "import os, time; print(os.getpid(), flush=True); time.sleep(60)"

    def refuse(stream: str, line: str) -> None:
        pids.append(int(line))
        raise RuntimeError("stop")

    with pytest.raises(RuntimeError, match="stop"):
        LocalRunner(default_timeout=30).run([PY, "-c", code], on_line=refuse)
    with pytest.raises(ProcessLookupError):  # killed and reaped, not left sleeping
        os.kill(pids[0], 0)


class Canned(Runner):
    """A runner whose ``_execute`` cannot stream (like the recorded-output test runners)."""

    target = "canned"

    def _execute(self, argv, *, timeout, input, env, cwd) -> Result:
        return Result(argv, 0, "one\ntwo\r\n", "three\n", b"", b"", 0.0)


def test_a_runner_that_cannot_stream_hands_the_lines_over_at_the_end() -> None:
    seen: list[tuple[str, str]] = []
    Canned().run(["pkg", "upgrade", "-y"], on_line=lambda stream, line: seen.append((stream, line)))
    assert seen == [("stdout", "one"), ("stdout", "two"), ("stderr", "three")]
    echoed: list[str] = []
    dry = DryRunRunner(LocalRunner(), echo=echoed.append)
    assert dry.run(["freebsd-update", "install"], on_line=lambda stream, line: seen.append((stream, line))).dry_run
    assert len(seen) == 3 and echoed == ["would run: freebsd-update install"]  # nothing ran, so no lines
