"""The plugin's own Alembic branch ``backup``: its tables on SQLite and MariaDB, no drift
against the models, and a point row read back by a second process's runtime."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect
from sqlmodel import select

from bhype_backup.models import BackupPoint, BackupTarget
from bhype_core.builtins import models
from bhype_core.db import migrate
from bhype_core.db.session import session
from bhype_core.runtime import build_runtime
from bhype_core.testing import make_settings


@pytest.fixture
def runtime_on(tmp_path, plugin_manager, register_plugin, database_url):
    import bhype_backup.plugin

    register_plugin(models, "core_models")
    register_plugin(bhype_backup.plugin, "backup")

    def build():
        settings = make_settings(tmp_path / "data", core={"database_url": database_url})
        return build_runtime(settings, plugin_manager)

    return build


def test_backup_branch_creates_its_tables_without_drift(runtime_on):
    runtime = runtime_on()
    assert "backup_0001" in migrate.pending(runtime)
    assert "backup_0001" in migrate.upgrade(runtime)
    assert {"backup_target", "backup_point"} <= set(inspect(runtime.engine).get_table_names())
    assert migrate.drift(runtime) == []
    assert migrate.upgrade(runtime) == []
    runtime.engine.dispose()


def test_rows_round_trip_through_a_second_runtime(runtime_on):
    first = runtime_on()
    migrate.upgrade(first)
    with session(first) as db:
        db.add(BackupTarget(name="nas", kind="daemon", destination="rsync://bk@nas/vms", windows=True))
        db.add(BackupPoint(vm_uuid="0" * 36, vm_name="web", target="nas", path="web/1", mode="snapshot",
                           size=5 * 2**40))
        db.commit()
    first.engine.dispose()
    second = runtime_on()
    with session(second) as db:
        target = db.exec(select(BackupTarget)).one()
        point = db.exec(select(BackupPoint)).one()
    assert (target.windows, target.has_secret, target.host_key) == (True, False, "")
    assert (point.size, point.complete, point.verify_state, point.job_id) == (5 * 2**40, False, "none", None)
    second.engine.dispose()
