"""A backup host that is really another host: an rsync daemon in its own network namespace,
reached over a veth pair from a second namespace where the worker's commands run (nothing
leaves the namespaces). Backup, incremental backup and restore over that link; then the link
goes down: a clear failed task, nothing listed."""

from __future__ import annotations

import pytest

from bhype_backup.points import list_points
from bhype_core.db.models import HostCommandSink
from bhype_core.testing.netns import NetnsRunner, in_ns, veth_into
from bhype_core.testing.rsyncd import start_rsyncd

from .world import MiB, write_pattern


@pytest.fixture
def backup_host(netns, world, tmp_path):
    here, there = netns("bkh"), netns("bkt")
    veth_into(here, "vbk0", there, "10.77.16.2/24")
    in_ns(here, "ip", "addr", "add", "10.77.16.1/24", "dev", "vbk0")
    runner = NetnsRunner(here)
    runner.add_audit_sink(HostCommandSink(world.runtime.engine))
    world.runtime.__dict__["runner"] = runner  # every host command of the worker runs in "here"
    wrap = ["ip", "netns", "exec", there]
    with start_rsyncd(tmp_path / "rsyncd", {"vms": tmp_path / "far"}, host="10.77.16.2", wrap=wrap) as daemon:
        yield here, daemon


def test_backup_and_restore_across_namespaces(world, backup_host, tmp_path):
    here, daemon = backup_host
    assert "10.77.16.2" in in_ns(here, "ip", "route", "get", "10.77.16.2").stdout  # via the veth, not out
    world.create_vm("far1", disks=["8M"])
    world.ok("backup.target_add", {"name": "far", "destination": daemon.url("vms", "bhype"),
                                   "password": daemon.password})
    assert world.ok("backup.target_test", {"name": "far"})["ok"]
    first = world.ok("backup.run", {"vm": "far1", "target": "far", "mode": "stop", "job": None})
    write_pattern(world.disk("far1"), 3, offset=6 * MiB, length=MiB // 8)
    second = world.ok("backup.run", {"vm": "far1", "target": "far", "mode": "stop", "job": None})
    assert second["literal_bytes"] < MiB // 2 and second["basis"] == first["path"]
    stored = tmp_path / "far" / "bhype" / second["path"] / "disks" / "disk0.img"
    assert stored.read_bytes() == world.disk("far1").read_bytes()
    world.ok("backup.restore", {"point": second["point"], "vm": "far1", "as": "far2"})
    assert world.disk("far2").read_bytes() == world.disk("far1").read_bytes()
    in_ns(here, "ip", "link", "set", "vbk0", "down")  # the backup host is gone
    failed = world.run("backup.run", {"vm": "far1", "target": "far", "mode": "stop", "job": None})
    assert failed.state == "failed" and "rsync exited" in failed.error["message"]
    assert [p.id for p in list_points(world.runtime, vm="far1")] == [second["point"], first["point"]]
