"""bhype_backup answers the core's last-backup question (``bhype_vm_last_backups``) from its real
``backup_point`` table, on SQLite and MariaDB: the newest complete point per VM whose
verification did not fail, its time aware UTC; through ``plugin_api.last_backup_times``."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

import bhype_backup.plugin
from bhype_backup.last_backup import last_good_backups
from bhype_backup.models import BackupPoint
from bhype_core.builtins import models
from bhype_core.db import migrate
from bhype_core.db.session import session
from bhype_core.plugin_api import last_backup_times
from bhype_core.runtime import build_runtime
from bhype_core.testing import make_settings

WEB, DB, NEW, NEVER = ("11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222",
                       "33333333-3333-4333-8333-333333333333", "44444444-4444-4444-8444-444444444444")
T0 = datetime(2026, 12, 7, 3, 0, 0, 250000, tzinfo=UTC)


@pytest.fixture
def runtime(tmp_path, plugin_manager, register_plugin, database_url):
    register_plugin(models, "core_models")
    register_plugin(bhype_backup.plugin, "backup")
    built = build_runtime(make_settings(tmp_path / "data", core={"database_url": database_url}), plugin_manager)
    migrate.upgrade(built)
    yield built
    built.engine.dispose()


def point(uuid: str, created: datetime, *, complete: bool = True, verify: str = "none", drill: str = "none",
          target: str = "nas") -> BackupPoint:
    return BackupPoint(vm_uuid=uuid, vm_name="vm-" + uuid[:4], target=target, path=f"{uuid[:4]}/{created:%H%M}",
                       mode="snapshot", created=created, finished=created + timedelta(minutes=3) if complete else None,
                       complete=complete, verify_state=verify, drill_state=drill)


def test_the_newest_good_point_per_vm(runtime):
    with session(runtime, write=True) as db:
        db.add_all([
            point(WEB, T0 - timedelta(days=2), verify="ok"),
            point(WEB, T0, target="offsite"),  # not verified yet: counts (verify may run weekly)
            point(WEB, T0 + timedelta(hours=1), complete=False),  # interrupted/failed run: never listed
            point(DB, T0 - timedelta(days=1), drill="failed"),  # a drill that did not boot: the data matched
            point(DB, T0 + timedelta(hours=2), verify="failed"),  # verification found a mismatch: not good
            point(NEW, T0 - timedelta(hours=3), complete=False),  # only a run in progress: no backup yet
        ])
    times = last_good_backups(runtime)
    assert times == {WEB: T0, DB: T0 - timedelta(days=1)}
    assert all(when.tzinfo is not None and when.utcoffset() == timedelta(0) for when in times.values())
    assert last_good_backups(runtime, [DB, NEVER]) == {DB: T0 - timedelta(days=1)}
    assert last_good_backups(runtime, []) == {}
    many = [f"{n:08d}-0000-4000-8000-000000000000" for n in range(1200)]  # past IN_LIMIT: picked in Python
    assert last_good_backups(runtime, [*many, DB]) == {DB: T0 - timedelta(days=1)}

    # As a reader sees it: the core's seam merges the plugin's answer.
    assert last_backup_times(runtime) == times
    assert last_backup_times(runtime, [WEB, NEW, NEVER]) == {WEB: T0}


def test_no_points_no_backups(runtime):
    assert last_backup_times(runtime) == {}
