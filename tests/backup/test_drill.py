"""Restore drills with a real guest (the tiny test guest under QEMU TCG, which prints its ready
marker on the serial console): a job's drill restores the newest point as a temporary VM
without network, boots it, sees the marker (and, asked to, its VNC screen changing), records
``ok`` with the console excerpt on the point and destroys the VM; a drill waiting for text that
never comes records ``failed``, raises ``backup.drill_failed`` and destroys its VM too. The
tick submits a due drill as the job's admin."""

from __future__ import annotations

import shutil
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bhype_backup.drill import clean, wait_for_text
from bhype_backup.jobs_service import JobCreate, create_job, update_job
from bhype_backup.models import BackupPoint
from bhype_core.db.migrate import upgrade
from bhype_core.db.session import session
from bhype_core.drivers.select import select_driver
from bhype_core.hookspecs import hookimpl
from bhype_core.plugin_api import find_vm, list_vms
from bhype_core.plugins import make_plugin_manager
from bhype_core.runtime import build_runtime
from bhype_core.spec import validate_spec
from bhype_core.testing import make_settings
from bhype_core.testing.guest_image import READY_MARKER
from bhype_core.testing.roles import role_account

from .world import World, close_world

WAIT = 300  # seconds a drill may wait for the guest (TCG on a loaded machine; a bound, not a timing assertion)


class Events:
    def __init__(self) -> None:
        self.seen: list = []

    @hookimpl
    def bhype_notify(self, event):
        self.seen.append(event)


@pytest.fixture
def guest_world(tiny_guest, local_user):
    root = Path(tempfile.mkdtemp(prefix="bh-dr-", dir="/tmp"))  # unix socket paths stay short
    (root / "templates").mkdir()
    (root / "templates" / "tiny.toml").write_text(tiny_guest.template_toml())
    settings = make_settings(root / "data", queue={"backend": "sqlite"}, qemu={"accel": "tcg"},
                             vm={"datastores": {"default": {"path": str(root / "ds")}},
                                 "templates_dir": str(root / "templates"), "stop_timeout": 90})
    runtime = build_runtime(settings, make_plugin_manager(load_entrypoints=True))
    assert not runtime.pm.blocked, runtime.pm.blocked
    upgrade(runtime)
    world = World(runtime, root, role_account(local_user, runtime, "admin"))
    world.events = Events()
    world.runtime.pm.register(world.events, "test-events")
    try:
        yield world
    finally:
        driver = select_driver(world.runtime)
        for row in list_vms(world.runtime):
            try:
                driver.force_stop(validate_spec(row.spec), root / "ds" / "vms" / row.name)
            except Exception:  # noqa: BLE001 - best effort cleanup
                pass
        close_world(world)
        shutil.rmtree(root, ignore_errors=True)


def test_console_text_is_cleaned_and_found_across_reads():
    import os

    read, write = os.pipe()
    os.write(write, b"\x1b[0mboot\r\nlin")
    os.write(write, b"e two BHYPE-GUEST-READY\r\nafter\r\n")
    os.close(write)
    found, excerpt = wait_for_text(read, READY_MARKER, 5)
    os.close(read)
    assert found and excerpt == "boot\nline two BHYPE-GUEST-READY"
    assert clean("a\x07b\x1b[2Jc\r\n") == "abc\n"


@pytest.mark.guest
@pytest.mark.slow
def test_drills_pass_on_the_marker_and_fail_without_it(guest_world):
    world = guest_world
    (world.root / "bk").mkdir()
    world.ok("backup.target_add", {"name": "usb", "destination": str(world.root / "bk")})
    world.ok("vm.create", {"name": "g1", "template": "tiny", "overrides": {"disks": [{"size": "8M"}]}})
    point = world.ok("backup.run", {"vm": "g1", "target": "usb", "mode": "stop", "job": None})["point"]
    job = create_job(world.runtime, world.admin.name, JobCreate(
        name="g1-nightly", target="usb", vms=["g1"], drill_schedule="@weekly",
        drill_check={"kind": "serial", "text": READY_MARKER}, drill_timeout=WAIT))

    result = world.ok("backup.drill", {"job": job.id})
    [drilled] = result["drills"]
    assert drilled["point"] == point and drilled["state"] == "ok" and READY_MARKER in drilled["excerpt"]
    with session(world.runtime) as db:
        row = db.get(BackupPoint, point)
        assert row.drill_state == "ok" and row.drill_at is not None and READY_MARKER in row.drill_excerpt
    assert [vm.name for vm in list_vms(world.runtime)] == ["g1"]  # the drill VM is gone
    assert not [p for p in (world.root / "ds" / "vms").iterdir() if p.name.startswith("drill-")]

    # The other sign of life: the VNC screen changing while the guest boots.
    [seen] = world.ok("backup.drill", {"point": point, "vnc": True, "timeout": WAIT})["drills"]
    assert seen["state"] == "ok" and "VNC screen" in seen["excerpt"] and "changed" in seen["excerpt"]
    assert [vm.name for vm in list_vms(world.runtime)] == ["g1"]

    failed = world.run("backup.drill", {"point": point, "text": "THIS-NEVER-APPEARS", "timeout": 60})
    assert failed.state == "failed" and "g1 (point" in failed.error["message"]
    with session(world.runtime) as db:
        row = db.get(BackupPoint, point)
        assert row.drill_state == "failed" and READY_MARKER in row.drill_excerpt  # what the console did say
    [event] = [e for e in world.events.seen if e.kind == "backup.drill_failed"]
    assert event.data["point"] == point and "THIS-NEVER-APPEARS" in event.data["error"]
    assert [vm.name for vm in list_vms(world.runtime)] == ["g1"]
    assert find_vm(world.runtime, "g1") is not None


def test_the_tick_submits_a_due_drill_as_the_jobs_admin(world, tmp_path):
    (tmp_path / "bk").mkdir()
    world.ok("backup.target_add", {"name": "usb", "destination": str(tmp_path / "bk")})
    world.create_vm("web", disks=["4M"])
    job = create_job(world.runtime, world.admin.name, JobCreate(
        name="weekly", target="usb", vms=["web"], schedule="@yearly", drill_schedule="@daily",
        drill_check={"kind": "serial", "text": "login:"}))
    update_job(world.runtime, job.id, last_drill_slot=datetime.now(UTC) - timedelta(days=2))
    from bhype_core.tasks import store
    from bhype_core.tasks.periodic import submit_run

    tick = submit_run(world.runtime, world.runtime.registry.periodic_jobs["backup.jobs"], "test")
    world.runtime.queue.scheduler.run_pass()
    from bhype_core.testing.tasks import drain

    drain(world.runtime)
    drill_id = store.get_task(world.runtime.engine, tick.id).result["weekly"]["drill"]
    drill = store.get_task(world.runtime.engine, drill_id)
    assert (drill.kind, drill.owner, drill.arguments) == ("backup.drill", world.admin.name, {"job": job.id})
