"""Jobs, retention and verification end to end with the real ``backup.run`` (real rsync to a
local target, stopped VMs on a directory datastore; every installed plugin): a job run makes a
point per selected VM, retention removes the old point's directory from the target through
``delete_point``, ``backup.verify`` passes on an intact point and, after one byte of a stored
disk is changed on the target, fails naming the file and chunk, marks the point and raises
``backup.verify_mismatch``."""

from __future__ import annotations

from datetime import timedelta

from sqlmodel import select

from bhype_backup.jobs_service import JobCreate, create_job
from bhype_backup.manifest import parse_manifest
from bhype_backup.models import BackupPoint
from bhype_core.db.session import session
from bhype_core.hookspecs import hookimpl

from .world import MiB, write_pattern


class Events:
    @hookimpl
    def bhype_notify(self, event):
        self.seen.append(event)

    def __init__(self) -> None:
        self.seen: list = []


def test_job_run_prune_and_verify(world, tmp_path):
    events = Events()
    world.runtime.pm.register(events, "test-events")
    world.create_vm("web", disks=["8M"])
    world.create_vm("db", disks=["8M"])
    (tmp_path / "usb").mkdir()
    world.ok("backup.target_add", {"name": "usb", "destination": str(tmp_path / "usb")})
    job = create_job(world.runtime, world.admin.name,
                     JobCreate(name="nightly", target="usb", mode="stop", vms=["web"], retention="last=1"))

    first = world.ok("backup.job.run", {"job": job.id})
    first_point = first["vms"]["web"]["point"]
    assert list(first["vms"]) == ["web"] and first["vms"]["web"]["pruned"] == []
    with session(world.runtime) as db:
        point = db.get(BackupPoint, first_point)
        assert point.job_id == job.id and point.complete
    first_dir = tmp_path / "usb" / point.path
    assert (first_dir / "manifest.json").is_file()

    # Written between runs; the next run keeps only the newest point (last=1) and removes the
    # older one from the target (its data lives on in the newer point's hard links).
    write_pattern(world.disk("web"), 5, offset=2 * MiB, length=MiB)
    with session(world.runtime, write=True) as db:  # the first point is a day old
        row = db.get(BackupPoint, first_point)
        row.created -= timedelta(days=1)
        db.add(row)
    second = world.ok("backup.job.run", {"job": job.id})
    second_point = second["vms"]["web"]["point"]
    assert second["vms"]["web"]["pruned"] == [first_point]
    assert not first_dir.exists()
    with session(world.runtime) as db:
        assert [p.id for p in db.exec(select(BackupPoint).where(BackupPoint.complete == True)).all()] == [  # noqa: E712
            second_point]
        point = db.get(BackupPoint, second_point)
    point_dir = tmp_path / "usb" / point.path

    verified = world.ok("backup.verify", {"point": second_point})
    assert verified == {"point": second_point, "state": "ok", "problems": []}
    with session(world.runtime) as db:
        row = db.get(BackupPoint, second_point)
        assert row.verify_state == "ok" and row.verified_at is not None

    # One byte changes on the target, in the second 4 MiB chunk of the disk.
    manifest = parse_manifest((point_dir / "manifest.json").read_bytes())
    [disk] = [f for f in manifest.files if f.role == "disk"]
    stored = point_dir / disk.stored
    data = bytearray(stored.read_bytes())
    data[5 * MiB] ^= 0xFF
    stored.write_bytes(bytes(data))
    failed = world.run("backup.verify", {"point": second_point})
    assert failed.state == "failed" and disk.stored in failed.error["message"]
    assert "1 chunk(s) differ" in failed.error["message"]
    with session(world.runtime) as db:
        assert db.get(BackupPoint, second_point).verify_state == "failed"
    [mismatch] = [e for e in events.seen if e.kind == "backup.verify_mismatch"]
    assert mismatch.data["point"] == second_point and mismatch.data["files"] == [disk.stored]

    # A missing file is a mismatch too; the manifest itself is checked against the row.
    stored.unlink()
    assert "cannot be read" in world.run("backup.verify", {"point": second_point}).error["message"]
    (point_dir / "manifest.json").write_bytes(b"{}")
    assert "not the one written" in world.run("backup.verify", {"point": second_point}).error["message"]


def test_weekly_verify_queues_the_newest_point_of_each_vm(world, tmp_path):
    world.create_vm("web", disks=["4M"])
    (tmp_path / "usb").mkdir()
    world.ok("backup.target_add", {"name": "usb", "destination": str(tmp_path / "usb")})
    older = world.ok("backup.run", {"vm": "web", "target": "usb", "mode": "stop", "job": None})["point"]
    newest = world.ok("backup.run", {"vm": "web", "target": "usb", "mode": "stop", "job": None})["point"]
    job = world.runtime.registry.periodic_jobs["backup.verify-weekly"]
    assert (job.minute, job.hour, job.day_of_week) == ("0", "3", "0")
    from bhype_core.tasks.periodic import submit_run
    from bhype_core.testing.tasks import run_queued

    run = submit_run(world.runtime, job, "test")
    run_queued(world.runtime)
    from bhype_core.tasks import store

    result = store.get_task(world.runtime.engine, run.id).result
    assert list(result["queued"]) == [str(newest)]
    with session(world.runtime) as db:
        assert db.get(BackupPoint, newest).verify_state == "ok"
        assert db.get(BackupPoint, older).verify_state == "none"
    # Turned off in the settings, the weekly run queues nothing.
    world.runtime.settings.section("backup_jobs").weekly_verify = False
    off = submit_run(world.runtime, job, "off")
    run_queued(world.runtime)
    assert store.get_task(world.runtime.engine, off.id).result == {"skipped": "weekly_verify is off"}
