"""Which services a request's session depends on, and the refusal to stop them unconfirmed."""

from __future__ import annotations

import pytest

from bhype_core.plugin_api import ValidationErrors
from bhype_hostops.session_guard import check_session, depends_on, session_from
from bhype_hostops.settings import HostopsSettings


def test_sessions_are_classified_by_address_and_the_clis_hint():
    assert session_from("192.0.2.10", None) == "web"  # a browser on another machine
    assert session_from("192.0.2.10", "ssh") == "ssh"  # a CLI in an SSH login elsewhere, tunnelled
    assert session_from("127.0.0.1", None) == "ssh"  # loopback: maybe the end of `ssh -L`
    assert session_from("::1", "local") == "local"  # a CLI at the host's console
    assert session_from("127.0.0.1", "local") == "local"
    assert session_from("192.0.2.10", "local") == "web"  # "local" only counts from loopback


def test_sshd_and_the_front_end_are_guarded():
    settings = HostopsSettings(services=["sshd", "nginx", "ntpd"], front_end_services=["nginx"])
    assert depends_on(settings, "ssh") == {"sshd", "nginx"}
    assert depends_on(settings, None) == {"sshd", "nginx"}  # unknown: assume SSH
    assert depends_on(settings, "web") == {"nginx"}
    assert depends_on(settings, "local") == {"nginx"}
    with pytest.raises(ValidationErrors, match="web front end"):
        check_session(settings, "nginx", "stop", "web", False)
    with pytest.raises(ValidationErrors, match="SSH connection"):
        check_session(settings, "sshd", "stop", None, False)
    check_session(settings, "nginx", "stop", "web", True)  # confirmed
    check_session(settings, "sshd", "stop", "web", False)  # a remote browser does not hang on sshd
    check_session(settings, "sshd", "restart", "ssh", False)  # sessions survive a restart
    check_session(settings, "ntpd", "stop", "ssh", False)


def test_pkg_older_than_2_4_exits_1_from_a_dry_run_with_upgrades(hostops_runtime, tmp_path):
    from . import freebsd_tools as tools
    from .tasks import run_task

    bin_dir = tmp_path / "bin"
    runtime = hostops_runtime(check_platform="freebsd", **tools.install(bin_dir))
    answers = tools.classic((0, "@audit_none.json", ""))
    answers["pkg upgrade -n"] = (1, "@pkg_upgrade_pending.txt", "")  # pkg < 2.4 (pkg-upgrade(8))
    tools.scenario(bin_dir, answers)
    task = run_task(runtime, "hostops.check", {})
    assert task.result["checks"]["pkg-upgrade"] == "ok" and task.result["findings"] == 1
