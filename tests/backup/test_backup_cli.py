"""``bhype backup …`` against the real API (uvicorn on loopback, a real API token, the worker in
this process): targets with a password read from a file (never echoed), a backup, the list,
a restore as a new VM and a delete, each as text and as JSON."""

from __future__ import annotations

import io
import json
import sys

import pytest

from bhype_core import cli
from bhype_core.testing.api_server import served_cli
from bhype_core.testing.rsyncd import start_rsyncd


@pytest.fixture
def bhype(world, tmp_path, monkeypatch, capsys):
    admin = world.admin.name
    world.create_vm("cli1", disks=["4M"])  # before the served worker takes the queue over
    world.runtime.queue.scheduler.lease.release()
    with served_cli(world.runtime, tmp_path, monkeypatch, [(admin, "admin")], as_user=admin) as server:
        def run(*args: str) -> tuple[int, str, str]:
            monkeypatch.setattr(sys, "stdin", io.StringIO(""))
            status = cli.main(["--config", str(server["config"]), *args])
            out, err = capsys.readouterr()
            return status, out, err

        yield run


def test_targets_backup_list_restore_and_delete_from_the_command_line(world, bhype, tmp_path):
    with start_rsyncd(tmp_path / "rsyncd", {"vms": tmp_path / "module"}) as daemon:
        secret = tmp_path / "nas.password"
        secret.write_text(daemon.password + "\n")
        status, out, err = bhype("backup", "target", "add", "nas", daemon.url("vms"), "--password-file", str(secret))
        assert status == 0, err
        assert daemon.password not in out + err
        status, out, _ = bhype("backup", "target", "list", "--json")
        [target] = json.loads(out)
        assert (target["name"], target["kind"], target["has_secret"]) == ("nas", "daemon", True)
        assert daemon.password not in out
        status, out, err = bhype("backup", "target", "test", "nas")
        assert status == 0 and "reachable, logged in, writable" in out + err
        status, out, err = bhype("backup", "run", "cli1", "--target", "nas", "--json")
        assert status == 0, err
        point = json.loads(out)["point"]
        status, out, _ = bhype("backup", "list", "cli1")
        assert status == 0 and out.splitlines()[0].split()[:3] == ["ID", "VM", "TARGET"]
        assert out.splitlines()[1].split()[:3] == [str(point), "cli1", "nas"]
        status, out, err = bhype("backup", "restore", str(point), "--as", "cli2", "--json")
        assert status == 0, err
        assert json.loads(out)["vm"] == "cli2"
        assert world.disk("cli2").read_bytes() == world.disk("cli1").read_bytes()
        status, out, err = bhype("backup", "restore", str(point))
        assert status != 0 and "confirm" in err
        status, out, err = bhype("backup", "delete", str(point))
        assert status == 0, err
        status, out, _ = bhype("backup", "list", "--json")
        assert json.loads(out) == []
