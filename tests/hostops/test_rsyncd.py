"""The rsync daemon for incoming backups and moves: modules and users stored, written as
rsyncd.conf(5) and a 0600 secrets file, and a real rsync daemon (an init.d test instance on a
loopback port) serving them to a real rsync client."""

from __future__ import annotations

import os
import stat
import subprocess

import pytest

from bhype_core.plugin_api import ValidationErrors
from bhype_hostops.rsyncd import public_config, save_config
from bhype_hostops.rsyncd_conf import RsyncdConfig, render_config

from .initd import rsyncd_service
from .tasks import run_task

pytestmark = pytest.mark.sshd  # starts real daemons on loopback

PASSWORD = "s3cret-pass-123"


@pytest.fixture
def daemon(tmp_path):
    etc = tmp_path / "etc"
    service = rsyncd_service(tmp_path / "rsyncd", etc / "rsyncd.conf", tmp_path / "rsyncd.pid")
    yield service
    service.remove()


def rsync(*args, password: str | None = None) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ)
    env.pop("RSYNC_PASSWORD", None)
    if password is not None:
        env["RSYNC_PASSWORD"] = password  # rsync(1): the daemon password, never in argv
    return subprocess.run(["rsync", *args], capture_output=True, text=True, env=env, timeout=120)


def test_modules_users_and_hosts_are_served_by_a_real_daemon(hostops_runtime, daemon, tmp_path):
    incoming, public, closed = (tmp_path / name for name in ("incoming", "public", "closed"))
    for directory in (incoming, public, closed):
        directory.mkdir()
    (public / "readme.txt").write_text("public\n")
    runtime = hostops_runtime(service_platform="sysv", script_names={"rsyncd": daemon.script}, config_checks={},
                              rsyncd_config=str(daemon.config), rsyncd_secrets=str(tmp_path / "etc" / "secrets"),
                              rsyncd_pid_file=str(daemon.pidfile), rsyncd_port=daemon.port,
                              rsyncd_address="127.0.0.1")
    save_config(runtime, RsyncdConfig.model_validate({
        "users": [{"name": "backup", "password": PASSWORD}],
        "modules": [
            {"name": "incoming", "path": str(incoming), "read_only": False, "auth_users": ["backup"],
             "hosts_allow": ["127.0.0.0/8"], "comment": "backups from peers", "uid": "root", "gid": "root"},
            {"name": "public", "path": str(public)},
            {"name": "closed", "path": str(closed), "hosts_allow": ["192.0.2.7"]},
        ],
    }))
    shown = public_config(runtime)
    assert shown["users"] == ["backup"] and PASSWORD not in repr(shown)

    applied = run_task(runtime, "hostops.rsyncd_apply", {})
    assert applied.state == "succeeded", applied.error
    assert PASSWORD not in applied.log_text  # the config is logged, the secret is not
    secrets = tmp_path / "etc" / "secrets"
    assert stat.S_IMODE(secrets.stat().st_mode) == 0o600 and secrets.read_text() == f"backup:{PASSWORD}\n"
    assert "not running" in applied.log_text

    assert run_task(runtime, "service.start", {"name": "rsyncd"}).state == "succeeded"
    url = f"rsync://backup@127.0.0.1:{daemon.port}"
    source = tmp_path / "disk.img"
    source.write_bytes(os.urandom(200_000))
    sent = rsync(str(source), f"{url}/incoming/", password=PASSWORD)
    assert sent.returncode == 0, sent.stderr
    assert (incoming / "disk.img").read_bytes() == source.read_bytes()
    wrong = rsync(str(source), f"{url}/incoming/other.img", password="wrong-password")
    assert wrong.returncode != 0 and "auth failed" in wrong.stderr
    assert not (incoming / "other.img").exists()
    read_only = rsync(str(source), f"rsync://127.0.0.1:{daemon.port}/public/")
    assert read_only.returncode != 0 and "read only" in read_only.stderr
    assert rsync(f"rsync://127.0.0.1:{daemon.port}/public/readme.txt", str(tmp_path / "got.txt")).returncode == 0
    assert (tmp_path / "got.txt").read_text() == "public\n"
    denied = rsync(f"rsync://127.0.0.1:{daemon.port}/closed/")
    assert denied.returncode != 0 and "access denied" in denied.stderr

    # A change to the modules only: the daemon re-reads the file per connection, no restart.
    pid = daemon.pid()
    save_config(runtime, RsyncdConfig.model_validate({
        "users": [{"name": "backup"}],  # keeps the stored password
        "modules": [{"name": "incoming", "path": str(incoming), "read_only": True, "auth_users": ["backup"]}],
    }))
    again = run_task(runtime, "hostops.rsyncd_apply", {})
    assert again.state == "succeeded", again.error
    assert "re-reads rsyncd.conf on each connection" in again.log_text and daemon.pid() == pid
    assert secrets.read_text() == f"backup:{PASSWORD}\n"
    refused = rsync(str(source), f"{url}/incoming/second.img", password=PASSWORD)
    assert refused.returncode != 0 and "read only" in refused.stderr

    # The daemon as a service: enabled at boot, then stopped, through the same tasks as sshd.
    enabled = run_task(runtime, "service.enable", {"name": "rsyncd"})
    assert enabled.state == "succeeded" and enabled.result["enabled"] is True and enabled.result["running"] is True
    stopped = run_task(runtime, "service.stop", {"name": "rsyncd"})
    assert stopped.state == "succeeded" and stopped.result["running"] is False and daemon.pid() is None
    assert rsync(f"rsync://127.0.0.1:{daemon.port}/").returncode != 0  # nothing listens any more
    assert run_task(runtime, "service.disable", {"name": "rsyncd"}).result["enabled"] is False


def test_bad_configurations_are_refused_and_nothing_is_written(hostops_runtime, tmp_path):
    bad = [
        {"modules": [{"name": "x", "path": "relative"}]},
        {"modules": [{"name": "x", "path": "/srv/x\nuid = root"}]},
        {"modules": [{"name": "global", "path": "/srv"}]},
        {"modules": [{"name": "x", "path": "/srv", "hosts_allow": ["10.0.0.0/33"]}]},
        {"modules": [{"name": "x", "path": "/srv", "auth_users": ["ghost"]}]},
        {"modules": [{"name": "x", "path": "/srv"}, {"name": "x", "path": "/srv2"}]},
        {"users": [{"name": "a", "password": "short"}]},
        {"users": [{"name": "a", "password": "line\nbreak-password"}]},
    ]
    for document in bad:
        with pytest.raises(ValueError):
            RsyncdConfig.model_validate(document)
    runtime = hostops_runtime(rsyncd_config=str(tmp_path / "etc" / "rsyncd.conf"),
                              rsyncd_secrets=str(tmp_path / "etc" / "secrets"))
    with pytest.raises(ValidationErrors, match="required for a new user"):
        save_config(runtime, RsyncdConfig.model_validate({"users": [{"name": "newbie"}]}))
    save_config(runtime, RsyncdConfig.model_validate({"modules": [{"name": "gone", "path": str(tmp_path / "nope")}]}))
    task = run_task(runtime, "hostops.rsyncd_apply", {})
    assert task.state == "failed" and "not directories" in task.error["message"]
    assert not (tmp_path / "etc").exists()  # nothing half-written


def test_rendered_config_follows_rsyncd_conf5():
    config = RsyncdConfig.model_validate({"users": [{"name": "u", "password": "p" * 8}], "modules": [
        {"name": "m", "path": "/tank/in", "read_only": False, "hosts_allow": ["10.1.2.0/24", "*.example.org"],
         "auth_users": ["u"], "uid": "root", "gid": "wheel"}]})
    text = render_config(config.modules, pid_file="/var/run/rsyncd.pid", port=873, address="",
                         secrets_file="/usr/local/etc/rsync/rsyncd.secrets")
    assert text.splitlines()[1:] == [
        "pid file = /var/run/rsyncd.pid", "port = 873", "", "[m]", "\tpath = /tank/in", "\tread only = no",
        "\thosts allow = 10.1.2.0/24 *.example.org", "\thosts deny = *", "\tauth users = u",
        "\tsecrets file = /usr/local/etc/rsync/rsyncd.secrets", "\tstrict modes = yes", "\tuid = root",
        "\tgid = wheel"]
