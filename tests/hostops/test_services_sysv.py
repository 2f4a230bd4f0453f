"""Host services on the development platform: real sshd and rsync daemons started, stopped,
reloaded and enabled at boot through Debian's service(8) and update-rc.d(8), as tasks."""

from __future__ import annotations

import socket

import pytest

from .initd import INIT_DIR, sshd_service
from .tasks import run_task

pytestmark = pytest.mark.sshd


def banner(port: int) -> bytes:
    """The first line an SSH server sends on ``port`` (RFC 4253 §4.2)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        return sock.makefile("rb").readline()


@pytest.fixture
def test_sshd(tmp_path):
    service = sshd_service(tmp_path / "sshd")
    yield service
    service.remove()


def sshd_runtime(hostops_runtime, test_sshd, **extra):
    return hostops_runtime(service_platform="sysv", script_names={"sshd": test_sshd.script},
                           config_checks={"sshd": ["/usr/sbin/sshd", "-t", "-f", str(test_sshd.config)]}, **extra)


def test_sshd_starts_stops_and_reports_through_the_tasks(hostops_runtime, test_sshd):
    runtime = sshd_runtime(hostops_runtime, test_sshd)
    status = run_task(runtime, "service.status", {"name": "sshd"})
    assert status.state == "succeeded", status.error
    assert status.result["running"] is False and status.result["platform"] == "sysv"

    started = run_task(runtime, "service.start", {"name": "sshd", "session": "local"})
    assert started.state == "succeeded", started.error
    assert started.result["running"] is True
    assert f"$ service {test_sshd.script} start" in started.log_text  # the command and its output, in the log
    pid = test_sshd.pid()
    assert pid is not None and banner(test_sshd.port).startswith(b"SSH-2.0-OpenSSH")

    reloaded = run_task(runtime, "service.reload", {"name": "sshd"})
    assert reloaded.state == "succeeded", reloaded.error
    assert "$ /usr/sbin/sshd -t -f" in reloaded.log_text  # sshd -t before the reload
    assert test_sshd.pid() == pid  # a reload (SIGHUP) keeps the daemon

    restarted = run_task(runtime, "service.restart", {"name": "sshd"})
    assert restarted.state == "succeeded", restarted.error
    assert test_sshd.pid() not in (None, pid)
    assert banner(test_sshd.port).startswith(b"SSH-2.0-OpenSSH")

    stopped = run_task(runtime, "service.stop", {"name": "sshd", "session": "local"})
    assert stopped.state == "succeeded", stopped.error
    assert stopped.result["running"] is False and test_sshd.pid() is None
    with pytest.raises(OSError):
        banner(test_sshd.port)


def test_a_broken_sshd_config_stops_a_reload_before_it_happens(hostops_runtime, test_sshd):
    runtime = sshd_runtime(hostops_runtime, test_sshd)
    assert run_task(runtime, "service.start", {"name": "sshd"}).state == "succeeded"
    pid = test_sshd.pid()
    test_sshd.config.write_text(test_sshd.config.read_text() + "NoSuchKeyword yes\n")
    for action in ("reload", "restart"):
        task = run_task(runtime, f"service.{action}", {"name": "sshd"})
        assert task.state == "failed"
        assert "configuration check of sshd failed" in task.error["message"]
        assert "NoSuchKeyword" in task.log_text  # sshd -t's own complaint is in the log
        assert test_sshd.pid() == pid  # still the same, running daemon


def test_enable_and_disable_at_boot_edit_the_runlevel_links(hostops_runtime, test_sshd):
    runtime = sshd_runtime(hostops_runtime, test_sshd)
    links = lambda: sorted(p.name for d in ("rc2.d", "rc3.d", "rc4.d", "rc5.d")  # noqa: E731
                           for p in (INIT_DIR.parent / d).iterdir() if p.name.endswith(test_sshd.script))
    assert links() == []
    enabled = run_task(runtime, "service.enable", {"name": "sshd"})
    assert enabled.state == "succeeded", enabled.error
    assert enabled.result["enabled"] is True
    assert links() and all(name.startswith("S") for name in links())
    disabled = run_task(runtime, "service.disable", {"name": "sshd"})
    assert disabled.state == "succeeded", disabled.error
    assert disabled.result["enabled"] is False
    assert links() and all(name.startswith("K") for name in links())
    assert run_task(runtime, "service.status", {"name": "sshd"}).result["enabled"] is False


def test_only_allow_listed_services_and_stopping_ones_own_session_needs_a_confirmation(hostops_runtime, test_sshd):
    from bhype_core.auth.principal import Principal
    from bhype_core.plugin_api import ValidationErrors
    from bhype_core.tasks import service

    runtime = sshd_runtime(hostops_runtime, test_sshd)
    admin = Principal(runtime.extras["admin"].name, "admin")
    with pytest.raises(ValidationErrors) as refused:
        service.submit(runtime, admin, "service.start", {"name": "mariadb"})
    assert "not an allow-listed service" in str(refused.value)
    assert "arguments.name" in str(refused.value.errors)
    assert run_task(runtime, "service.start", {"name": "sshd"}).state == "succeeded"
    for session in ("ssh", None):  # over SSH, or not known: sshd is what the session may hang on
        arguments = {"name": "sshd"} | ({"session": session} if session else {})
        with pytest.raises(ValidationErrors) as guarded:
            service.submit(runtime, admin, "service.stop", arguments)
        assert "would cut the SSH connection" in str(guarded.value)
    assert test_sshd.pid() is not None  # nothing was queued, nothing stopped
    confirmed = run_task(runtime, "service.stop", {"name": "sshd", "session": "ssh", "confirm_session_loss": True})
    assert confirmed.state == "succeeded" and test_sshd.pid() is None
