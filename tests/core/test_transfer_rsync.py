"""run_rsync and the secret/host-key helpers against real rsync: a local copy, an rsync daemon
with a password on a loopback port, rsync over a real sshd with a pinned host key; progress,
delta statistics, cancel, and the failures a backup must report clearly."""

from __future__ import annotations

import os
import stat
import threading
import time
from pathlib import Path

import pytest

from bhype_core.errors import CommandError
from bhype_core.host.runner import LocalRunner
from bhype_core.tasks import Cancelled
from bhype_core.testing.rsyncd import start_rsyncd
from bhype_core.testing.sshd import start_sshd
from bhype_core.transfer import (
    SshTransport,
    TransferFailed,
    fingerprint,
    parse_known_hosts,
    pin_host_key,
    read_secret,
    rsync_argv,
    run_rsync,
    ssh_destination,
    write_secret,
)

MiB = 2**20


def image(path: Path, size: int, seed: int = 1) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(os.urandom(size) if seed else b"\0" * size)
    return path


def patch(path: Path, offset: int, data: bytes) -> None:
    with path.open("r+b") as handle:
        handle.seek(offset)
        handle.write(data)


@pytest.fixture
def daemon(tmp_path):
    with start_rsyncd(tmp_path / "rsyncd", {"vms": tmp_path / "module"}) as server:
        yield server


def test_local_copy_reports_progress_and_sends_only_changed_blocks(tmp_path):
    source = image(tmp_path / "src" / "disk0.img", 24 * MiB)
    runner, seen = LocalRunner(), []
    first = run_rsync(runner, rsync_argv([str(source)], str(tmp_path / "dst") + "/"), on_progress=seen.append)
    assert (tmp_path / "dst" / "disk0.img").read_bytes() == source.read_bytes()
    assert first.literal_bytes == 24 * MiB and first.matched_bytes == 0
    assert seen and seen[-1].bytes_done == 24 * MiB and seen[-1].percent == 100.0
    patch(source, 5 * MiB, b"changed!" * 512)  # 4 KiB
    os.utime(source, (time.time() + 10, time.time() + 10))
    second = run_rsync(runner, rsync_argv([str(source)], str(tmp_path / "dst") + "/"))
    assert (tmp_path / "dst" / "disk0.img").read_bytes() == source.read_bytes()
    # --no-whole-file: the delta algorithm even between local paths; a block or two of literal data.
    assert 4096 <= second.literal_bytes <= 64 * 1024
    assert second.matched_bytes >= 23 * MiB


def test_daemon_with_a_password_file_and_with_the_environment(tmp_path, daemon):
    source = image(tmp_path / "src" / "disk0.img", 2 * MiB)
    secret = write_secret(tmp_path / "secrets" / "nas", daemon.password)
    argv = rsync_argv([str(source)], daemon.url("vms", "a") + "/", password_file=str(secret), connect_timeout=10)
    assert daemon.password not in " ".join(argv)
    stats = run_rsync(LocalRunner(), argv)
    assert stats.literal_bytes == 2 * MiB
    assert (daemon.modules["vms"] / "a" / "disk0.img").read_bytes() == source.read_bytes()
    image(source, 2 * MiB)  # new content, same size: a later mtime, or rsync's quick check skips it
    os.utime(source, (time.time() + 10, time.time() + 10))
    argv = rsync_argv([str(source)], daemon.url("vms", "a") + "/")
    run_rsync(LocalRunner(), argv, env={"RSYNC_PASSWORD": daemon.password})
    assert (daemon.modules["vms"] / "a" / "disk0.img").read_bytes() == source.read_bytes()


def test_wrong_daemon_password_is_a_clear_failure(tmp_path, daemon):
    source = image(tmp_path / "src" / "disk0.img", 4096)
    secret = write_secret(tmp_path / "secrets" / "nas", "not-the-password")
    with pytest.raises(TransferFailed) as caught:
        run_rsync(LocalRunner(), rsync_argv([str(source)], daemon.url("vms") + "/", password_file=str(secret)))
    assert caught.value.returncode == 5
    assert "auth failed" in caught.value.stderr
    assert "wrong password or module" in caught.value.reason
    assert not (daemon.modules["vms"] / "disk0.img").exists()


def test_unreachable_daemon_fails_with_a_socket_error(tmp_path, daemon):
    source = image(tmp_path / "src" / "disk0.img", 4096)
    daemon.stop()
    with pytest.raises(TransferFailed) as caught:
        run_rsync(LocalRunner(), rsync_argv([str(source)], daemon.url("vms") + "/", connect_timeout=5),
                  env={"RSYNC_PASSWORD": daemon.password})
    assert caught.value.returncode == 10 and "socket I/O error" in caught.value.reason


def test_cancel_stops_rsync_at_once(tmp_path):
    source = image(tmp_path / "src" / "disk0.img", 16 * MiB)
    seen: list = []
    argv = rsync_argv([str(source)], str(tmp_path / "dst") + "/", extra=["--bwlimit=1m"])
    with pytest.raises(Cancelled):
        run_rsync(LocalRunner(), argv, on_progress=seen.append, cancel=lambda: any(p.bytes_done for p in seen))
    assert seen and seen[-1].bytes_done < 16 * MiB
    # Nothing of the group keeps writing once run_rsync returned.
    size = (tmp_path / "dst" / "disk0.img").stat().st_size
    time.sleep(0.5)
    assert (tmp_path / "dst" / "disk0.img").stat().st_size == size


def test_timeout_kills_a_stalled_transfer(tmp_path):
    source = image(tmp_path / "src" / "disk0.img", 8 * MiB)
    argv = rsync_argv([str(source)], str(tmp_path / "dst") + "/", extra=["--bwlimit=512k"])
    with pytest.raises(CommandError, match="timed out"):
        run_rsync(LocalRunner(), argv, timeout=1)


def test_rsync_over_ssh_with_a_pinned_host_key(tmp_path):
    source = image(tmp_path / "src" / "disk0.img", 3 * MiB)
    with start_sshd(tmp_path / "sshd") as server:
        pinned = pin_host_key(server.host, server.port)
        [(hosts, kind, key)] = parse_known_hosts(pinned)
        assert hosts == f"[{server.host}]:{server.port}" and kind == "ssh-ed25519"
        assert fingerprint(key).startswith("SHA256:")
        known = write_secret(tmp_path / "keys" / "known_hosts", pinned)
        ssh = SshTransport(key_file=str(server.identity), known_hosts=str(known), port=server.port)
        destination = ssh_destination(server.user, server.host, str(tmp_path / "remote") + "/")
        stats = run_rsync(LocalRunner(), rsync_argv([str(source)], destination, ssh=ssh))
        assert stats.literal_bytes == 3 * MiB
        assert (tmp_path / "remote" / "disk0.img").read_bytes() == source.read_bytes()
    # Another server on the same address and port answers with a different host key.
    with start_sshd(tmp_path / "sshd2") as other:
        known.write_text(pinned.replace(f"]:{server.port} ", f"]:{other.port} "))
        ssh = SshTransport(key_file=str(other.identity), known_hosts=str(known), port=other.port)
        destination = ssh_destination(other.user, other.host, str(tmp_path / "remote2") + "/")
        with pytest.raises(TransferFailed) as caught:
            run_rsync(LocalRunner(), rsync_argv([str(source)], destination, ssh=ssh))
        assert "REMOTE HOST IDENTIFICATION HAS CHANGED" in caught.value.stderr
        assert not (tmp_path / "remote2").exists()


def test_pinning_an_unreachable_host_fails(tmp_path):
    from bhype_core.testing.ports import free_port

    with pytest.raises(CommandError, match="no SSH host key"):
        pin_host_key("127.0.0.1", free_port(), timeout=3)


def test_write_secret_is_private_atomic_and_never_follows_a_symlink(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("keep me")
    directory = tmp_path / "secrets"
    directory.mkdir(mode=0o755)
    (directory / "nas").symlink_to(victim)
    path = write_secret(directory / "nas", "s3cret")
    assert victim.read_text() == "keep me"  # the symlink itself was replaced
    assert not path.is_symlink() and read_secret(path) == b"s3cret"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert [p.name for p in directory.iterdir()] == ["nas"]  # no temporary left


def test_run_delivers_lines_while_the_command_runs(tmp_path):
    seen: list[tuple[float, str]] = []
    done = threading.Event()
    result = LocalRunner().run(["sh", "-c", "echo one; sleep 1; printf 'two\\rthree\\n'"],
                               on_line=lambda _stream, line: seen.append((time.monotonic(), line)))
    done.set()
    assert [line for _, line in seen] == ["one", "two", "three"]
    assert seen[1][0] - seen[0][0] > 0.5  # "one" arrived before the command ended
    assert result.stdout == "one\ntwo\rthree\n"


def test_pipe_and_run_can_be_cancelled_locally_and_over_ssh(tmp_path):
    from bhype_core.errors import CommandCancelled

    started = time.monotonic()
    with pytest.raises(CommandCancelled):
        LocalRunner().pipe(["sleep", "30"], ["cat"], cancel=lambda: time.monotonic() - started > 0.5)
    assert time.monotonic() - started < 10
    started = time.monotonic()
    with pytest.raises(CommandCancelled) as cancelled:
        LocalRunner().run(["sh", "-c", "echo before; exec sleep 30"],
                          cancel=lambda: time.monotonic() - started > 0.5)
    assert cancelled.value.stdout == "before\n"  # the output so far is kept
    assert time.monotonic() - started < 10
    with start_sshd(tmp_path / "sshd") as server:
        runner = server.runner(control_master=False)
        lines: list[tuple[str, str]] = []
        result = runner.run(["sh", "-c", "echo a; sleep 0.2; echo b >&2; sleep 0.2; echo c"],
                            on_line=lambda stream, line: lines.append((stream, line)))
        assert lines == [("stdout", "a"), ("stderr", "b"), ("stdout", "c")] and result.stderr.strip() == "b"
        started = time.monotonic()
        with pytest.raises(CommandCancelled):
            runner.run(["sleep", "30"], cancel=lambda: time.monotonic() - started > 0.5)
        assert time.monotonic() - started < 10
