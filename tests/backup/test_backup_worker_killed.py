"""A real worker process killed (SIGKILL) in the middle of a backup: rsync dies with it, the
task ends ``interrupted`` when a new worker starts, no point is listed, and the next backup
resumes from what had reached the target."""

from __future__ import annotations

import signal
import time

from bhype_backup.points import list_points
from bhype_core.api.principal import Principal
from bhype_core.db.task_models import FINAL_STATES
from bhype_core.tasks import service, store
from bhype_core.testing.rsyncd import start_rsyncd

from .world import MiB, write_pattern


def wait_for(check, what: str, timeout: float = 180.0):
    deadline = time.monotonic() + timeout
    while not (value := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)
    return value


def test_worker_killed_during_a_backup(world, tmp_path, start_worker):
    world.create_vm("big", disks=["24M"])
    write_pattern(world.disk("big"), 9, length=20 * MiB)
    module = tmp_path / "module"
    settings = world.runtime.settings
    with start_rsyncd(tmp_path / "rsyncd", {"vms": module}) as daemon:
        world.ok("backup.target_add", {"name": "nas", "destination": daemon.url("vms"), "password": daemon.password})
        raw = {"core": {"data_dir": str(settings.core.data_dir)}, "queue": {"backend": "sqlite"},
               "tasks": {"poll_interval": 0.2}, "auth": {"admin_groups": settings.auth.admin_groups,
                                                        "operator_groups": settings.auth.operator_groups},
               "vm.datastores.default": {"path": str(world.root / "ds")}, "backup": {"bwlimit": 2048}}
        admin = Principal(world.admin.name, "admin")
        first = start_worker(raw)
        task = service.submit(world.runtime, admin, "backup.run", {"vm": "big", "target": "nas", "mode": "stop",
                                                                   "job": None})
        wait_for(lambda: any(p.stat().st_size > 4 * MiB for p in module.rglob("*.img")), "the transfer to start")
        first.send_signal(signal.SIGKILL)
        first.wait()
        start_worker(raw)
        ended = wait_for(lambda: (row := store.get_task(world.runtime.engine, task.id)).state in FINAL_STATES and row,
                         "the killed task to be ended")
        assert ended.state == "interrupted"
        assert list_points(world.runtime) == []
        again = service.submit(world.runtime, admin, "backup.run", {"vm": "big", "target": "nas", "mode": "stop",
                                                                    "job": None})
        done = wait_for(lambda: (row := store.get_task(world.runtime.engine, again.id)).state in FINAL_STATES and row,
                        "the second backup")
        assert done.state == "succeeded", done.error
        # Resumed: what the killed run had written (over 4 MiB) served as the basis.
        assert done.result["matched_bytes"] >= 3 * MiB
        stored = module / done.result["path"] / "disks" / "disk0.img"
        assert stored.read_bytes() == world.disk("big").read_bytes()
        assert [p.id for p in list_points(world.runtime)] == [done.result["point"]]
