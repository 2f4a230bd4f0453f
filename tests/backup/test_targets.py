"""Backup targets end to end through the task queue: a local directory, a real rsync daemon
with a password on a loopback port, a real sshd with the host key pinned at ``target add``.
Secrets are stored 0600 for the worker and never appear in task arguments, logs, the API or
argv; ``target test`` proves reachability, login, write access and reports free space."""

from __future__ import annotations

import json
import stat

import pytest
from fastapi.testclient import TestClient

from bhype_backup.endpoint import secrets_dir
from bhype_core.api.app import create_app
from bhype_core.testing.api_auth import act_as
from bhype_core.testing.rsyncd import start_rsyncd
from bhype_core.testing.sshd import start_sshd


def test_local_target_add_test_show_and_remove(world, tmp_path):
    (tmp_path / "bk").mkdir()
    added = world.ok("backup.target_add", {"name": "usb", "destination": str(tmp_path / "bk")})
    assert (added["kind"], added["has_secret"], added["destination"]) == ("local", False, str(tmp_path / "bk"))
    tested = world.ok("backup.target_test", {"name": "usb"})
    assert tested["ok"] and tested["free_bytes"] > 0
    assert list((tmp_path / "bk").iterdir()) == []  # the probe was removed again
    app = create_app(runtime=world.runtime)
    act_as(app, world.admin.name, "admin")
    with TestClient(app) as client:
        shown = client.get("/api/v1/backup/targets/usb").json()
        assert shown["test_ok"] is True and "reachable, logged in, writable" in shown["test_message"]
        assert client.get("/api/v1/backup/targets").json()[0]["name"] == "usb"
    world.ok("backup.target_remove", {"name": "usb"})
    assert world.run("backup.target_test", {"name": "usb"}).state == "failed"


def test_daemon_target_keeps_its_password_secret(world, tmp_path):
    with start_rsyncd(tmp_path / "rsyncd", {"vms": tmp_path / "module"}) as daemon:
        task = world.run("backup.target_add", {"name": "nas", "destination": daemon.url("vms", "bhype"),
                                               "password": daemon.password, "windows": False})
        assert task.state == "succeeded", task.error
        assert task.arguments["password"] == "(stored)"  # scrubbed from the stored task
        secret = secrets_dir(world.runtime, "nas") / "password"
        assert secret.read_text() == daemon.password
        assert stat.S_IMODE(secret.stat().st_mode) == 0o600
        assert stat.S_IMODE(secret.parent.stat().st_mode) == 0o700
        tested = world.run("backup.target_test", {"name": "nas"})
        assert tested.state == "succeeded", tested.error
        assert tested.result["free_bytes"] is None  # a daemon cannot say
        assert (tmp_path / "module" / "bhype").is_dir()
        app = create_app(runtime=world.runtime)
        act_as(app, world.admin.name, "admin")
        with TestClient(app) as client:
            shown = client.get("/api/v1/backup/targets/nas")
            tasks = client.get("/api/v1/tasks", params={"limit": 50})
        everything = json.dumps([shown.json(), tasks.json(), task.result, tested.result,
                                 world.log(task), world.log(tested)])
        assert daemon.password not in everything
        assert shown.json()["has_secret"] is True
        # A wrong password: a clear failed test, stored on the target.
        secret.write_text("wrong")
        failed = world.run("backup.target_test", {"name": "nas"})
        assert failed.state == "failed" and "auth failed" in failed.error["message"]


def test_ssh_target_pins_the_host_key_and_refuses_a_changed_one(world, tmp_path):
    with start_sshd(tmp_path / "sshd") as server:
        destination = f"ssh://{server.user}@{server.host}:{server.port}{tmp_path / 'remote'}"
        task = world.run("backup.target_add", {"name": "far", "destination": destination,
                                               "key": server.identity.read_text()})
        assert task.state == "succeeded", task.error
        assert task.arguments["key"] == "(stored)"
        assert task.result["host_key_fingerprints"][0].startswith("ssh-ed25519 SHA256:")
        (tmp_path / "remote").mkdir()
        tested = world.run("backup.target_test", {"name": "far"})
        assert tested.state == "succeeded", tested.error
        assert tested.result["free_bytes"] > 0
        port = server.port
    # Another sshd (a new host key) now answers where the target points.
    with start_sshd(tmp_path / "sshd2") as other:
        from bhype_backup.models import BackupTarget
        from bhype_core.plugin_api import session

        with session(world.runtime) as db:
            row = db.get(BackupTarget, 1) or next(iter(db.exec(__import__("sqlmodel").select(BackupTarget))))
            row.destination = row.destination.replace(f":{port}/", f":{other.port}/")
            db.add(row)
        known = secrets_dir(world.runtime, "far") / "known_hosts"
        known.write_text(known.read_text().replace(f"]:{port} ", f"]:{other.port} "))
        failed = world.run("backup.target_test", {"name": "far"})
        assert failed.state == "failed"
        assert "Host key verification failed" in failed.error["message"]
        assert "host key changed" in failed.error["message"]


@pytest.mark.parametrize("arguments, message", [
    ({"name": "Bad", "destination": "/x"}, "lower-case"),
    ({"name": "x", "destination": "rsync://u:pw@h/m"}, "never put a password"),
    ({"name": "x", "destination": "/x", "password": "p"}, "only an rsync daemon"),
    ({"name": "x", "destination": "ssh://u@h/srv"}, "needs the private key"),
    ({"name": "x", "destination": "relative/path"}, "use /path"),
])
def test_bad_targets_are_refused_by_the_api_and_by_the_task(world, arguments, message):
    app = create_app(runtime=world.runtime)
    act_as(app, world.admin.name, "admin")
    with TestClient(app) as client:
        answer = client.post("/api/v1/backup/targets", json=arguments)
    assert answer.status_code == 422 and message in answer.text
    failed = world.run("backup.target_add", arguments)  # the worker checks again
    assert failed.state == "failed" and message in failed.error["message"]
