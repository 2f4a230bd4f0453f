"""The SSH runner against a real OpenSSH server on loopback (one sshd for the whole module)."""

from __future__ import annotations

import json
import os
import sys
import tempfile
import threading
from pathlib import Path

import pytest

from bhype_core.config import RunnerSettings
from bhype_core.errors import CommandError
from bhype_core.host.audit import AuditRecord, acting_as
from bhype_core.host.runner import LocalRunner, make_runner
from bhype_core.host.ssh import SSHRunner
from bhype_core.testing.ports import free_port
from bhype_core.testing.sshd import SshdServer

pytestmark = pytest.mark.sshd

PY = sys.executable  # the server is this machine, so the same interpreter exists "remotely"
ECHO_ARGV = "import json, sys; print(json.dumps(sys.argv[1:]))"


@pytest.fixture(scope="module")
def ssh(sshd_server: SshdServer) -> SSHRunner:
    """One runner (with its shared control connection) for the module."""
    return sshd_server.runner(default_timeout=30, kill_grace=0.5)


def test_runs_a_command_and_captures_output(ssh: SSHRunner) -> None:
    result = ssh.run([PY, "-c", "import sys; print('out'); print('err', file=sys.stderr)"])
    assert result.ok and result.stdout == "out\n" and result.stderr == "err\n"
    assert result.argv[0] == PY  # the command asked for, not the ssh wrapper


def test_exit_status_propagates(ssh: SSHRunner) -> None:
    code = "import sys; print('remote trouble', file=sys.stderr); sys.exit(5)"
    assert ssh.run([PY, "-c", code], check=False).returncode == 5
    with pytest.raises(CommandError) as caught:
        ssh.run([PY, "-c", code])
    assert caught.value.returncode == 5 and caught.value.stderr_tail == "remote trouble"


def test_arguments_arrive_literally_no_shell_injection(ssh: SSHRunner, tmp_path: Path) -> None:
    markers = [tmp_path / name for name in ("subst", "semicolon", "backtick", "and")]
    nasty = [
        "a b", "it's", '"double"', "back\\slash", "new\nline", "", "--", "-e", "*", "~", "$HOME",
        "|", "&", ">", "<x", "# not a comment", "tab\there", "ünïcödé",
        f"$(touch {markers[0]})", f"; touch {markers[1]}", f"`touch {markers[2]}`", f"&& touch {markers[3]}",
    ]
    result = ssh.run([PY, "-c", ECHO_ARGV, *nasty])
    assert json.loads(result.stdout) == nasty
    assert [m for m in markers if m.exists()] == []


def test_program_name_is_never_shell_syntax(ssh: SSHRunner) -> None:
    # Unquoted, `if` would be a syntax error and `A=b` an assignment; quoted, each is simply
    # a program that does not exist (status 127 from the remote shell).
    for program in ("if", "A=b", "{"):
        assert ssh.run([program], check=False).returncode == 127


def test_stdin_str_and_bytes_through_ssh(ssh: SSHRunner) -> None:
    text = "héllo over ssh\nline two\n"
    assert ssh.run(["cat"], input=text).stdout == text
    data = os.urandom(2_000_000)  # binary, with every byte value, several MB
    result = ssh.run(["cat"], input=data, timeout=60)
    assert result.stdout_bytes == data


def test_non_utf8_output_over_ssh(ssh: SSHRunner) -> None:
    raw = b"\xff\xfe caf\xe9\n"
    result = ssh.run([PY, "-c", f"import sys; sys.stdout.buffer.write({raw!r})"])
    assert result.stdout_bytes == raw and "\ufffd" in result.stdout


def test_env_and_cwd_on_the_remote_side(ssh: SSHRunner, tmp_path: Path) -> None:
    directory = tmp_path / "it's a dir"
    directory.mkdir()
    code = "import os; print(os.getcwd()); print(os.environ['BHYPE_T'])"
    result = ssh.run([PY, "-c", code], env={"BHYPE_T": "v $(w) 'x'"}, cwd=directory)
    assert result.stdout.splitlines() == [str(directory), "v $(w) 'x'"]


def test_timeout_over_ssh_and_the_runner_keeps_working(ssh: SSHRunner) -> None:
    with pytest.raises(CommandError) as caught:
        ssh.run([PY, "-c", "import time; print('begun', flush=True); time.sleep(60)"], timeout=6)
    assert caught.value.reason == "timed out after 6s" and caught.value.returncode is None
    assert caught.value.stdout == "begun\n"
    assert ssh.run(["echo", "alive"]).stdout == "alive\n"


def test_audit_names_the_ssh_target_and_the_actor(ssh: SSHRunner, sshd_server: SshdServer) -> None:
    records: list[AuditRecord] = []
    ssh.add_audit_sink(records.append)
    try:
        with acting_as(user="erin", task_id="t-ssh"):
            ssh.run(["true"])
    finally:
        ssh.remove_audit_sink(records.append)
    (record,) = records
    assert record.target == f"ssh://{sshd_server.user}@127.0.0.1:{sshd_server.port}"
    assert (record.user, record.task_id, record.argv, record.returncode) == ("erin", "t-ssh", ["true"], 0)


def test_connection_refused_is_an_ssh_failure(sshd_server: SshdServer) -> None:
    runner = SSHRunner("127.0.0.1", port=free_port(), identity=sshd_server.identity,
                       options=sshd_server.ssh_options, control_master=False)
    records: list[AuditRecord] = []
    runner.add_audit_sink(records.append)
    with pytest.raises(CommandError) as caught:
        runner.run(["true"], check=False)  # connection failures raise whatever check says
    error = caught.value
    assert error.returncode == 255 and "ssh connection failed" in error.reason
    assert "Connection refused" in error.stderr
    assert records[0].error.startswith("ssh connection failed")


def test_unauthorised_key_is_refused(sshd_server: SshdServer, tmp_path: Path) -> None:
    stranger = tmp_path / "stranger"
    LocalRunner().run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(stranger)])
    runner = sshd_server.runner(identity=stranger, control_master=False)
    with pytest.raises(CommandError, match="ssh connection failed") as caught:
        runner.run(["true"])
    assert "Permission denied" in caught.value.stderr


def test_unknown_host_key_is_refused(sshd_server: SshdServer, tmp_path: Path) -> None:
    empty = tmp_path / "known_hosts"
    empty.write_text("")
    runner = SSHRunner(sshd_server.host, port=sshd_server.port, user=sshd_server.user,
                       identity=sshd_server.identity, control_master=False,
                       options=(f"UserKnownHostsFile={empty}", "GlobalKnownHostsFile=/dev/null",
                                "StrictHostKeyChecking=yes"))
    with pytest.raises(CommandError, match="ssh connection failed") as caught:
        runner.run(["true"])
    assert "Host key verification failed" in caught.value.stderr


def test_control_connection_is_shared_and_closed(sshd_server: SshdServer) -> None:
    runner = sshd_server.runner()
    runner.run(["true"])
    control_dir = Path(runner._control_dir or "")
    (socket_path,) = control_dir.iterdir()
    assert socket_path.is_socket()
    assert runner.run(["echo", "again"]).stdout == "again\n"
    assert list(control_dir.iterdir()) == [socket_path]
    runner.close()
    assert not control_dir.exists()
    assert runner.run(["echo", "reopened"]).stdout == "reopened\n"  # usable after close
    runner.close()


def test_concurrent_commands_share_one_runner(sshd_server: SshdServer) -> None:
    runner = sshd_server.runner()
    outputs: dict[int, str] = {}
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            outputs[n] = runner.run(["echo", f"job {n}"]).stdout
        except BaseException as exc:  # reported below; a thread cannot raise into the test
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert outputs == {n: f"job {n}\n" for n in range(5)}


def test_make_runner_reaches_the_real_server(sshd_server: SshdServer) -> None:
    settings = RunnerSettings(
        target=sshd_server.target,
        ssh_identity=sshd_server.identity,
        ssh_options=list(sshd_server.ssh_options),
        default_timeout=30,
    )
    with make_runner(settings) as runner:
        assert isinstance(runner, SSHRunner)
        assert runner.run(["echo", "via settings"]).stdout == "via settings\n"


def test_control_socket_fits_even_under_a_deep_temporary_directory(sshd_server, tmp_path, monkeypatch):
    # nox and CI set TMPDIR deep inside the work tree; the ControlPath socket must still fit.
    deep = tmp_path / ("d" * 60) / ("e" * 60)
    deep.mkdir(parents=True)
    monkeypatch.setattr(tempfile, "tempdir", str(deep))
    runner = sshd_server.runner()
    assert runner.run(["echo", "fits"]).stdout == "fits\n"


class DroppingProxy(threading.Thread):
    """A TCP forwarder to the real sshd that closes its first ``drops`` connections at once, as
    sshd's MaxStartups or dropbear's per-address limit does with unauthenticated connections."""

    def __init__(self, target_port: int, drops: int) -> None:
        import socket

        super().__init__(daemon=True)
        self.target_port, self.drops, self.accepted = target_port, drops, 0
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]

    def run(self) -> None:
        import socket

        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            if self.accepted <= self.drops:
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self.pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def pump(source, sink) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for end in (source, sink):
                try:
                    end.shutdown(2)
                except OSError:
                    pass


def test_a_connection_dropped_before_the_login_is_tried_again(sshd_server: SshdServer) -> None:
    alias = f"HostKeyAlias=[127.0.0.1]:{sshd_server.port}"  # the server's pinned key, reached through the proxy
    proxy = DroppingProxy(sshd_server.port, drops=2)
    proxy.start()
    try:
        runner = SSHRunner("127.0.0.1", port=proxy.port, user=sshd_server.user, identity=sshd_server.identity,
                           options=(*sshd_server.ssh_options, alias), control_master=False)
        assert runner.run(["echo", "through"]).stdout == "through\n"
        assert proxy.accepted == 3
    finally:
        proxy.listener.close()

    always = DroppingProxy(sshd_server.port, drops=10)
    always.start()
    try:
        runner = SSHRunner("127.0.0.1", port=always.port, user=sshd_server.user, identity=sshd_server.identity,
                           options=(*sshd_server.ssh_options, alias), control_master=False)
        with pytest.raises(CommandError, match="ssh connection failed") as caught:
            runner.run(["true"])
        assert "kex_exchange_identification" in caught.value.stderr
        assert always.accepted == 3  # three tries, then the error
    finally:
        always.listener.close()
