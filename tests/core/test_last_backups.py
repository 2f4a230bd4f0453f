"""The last-backup seam: ``bhype_vm_last_backups`` implemented by fake backup plugins, merged by
``plugin_api.last_backup_times`` (newest wins, only what was asked, errors name the plugin)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from bhype_core.errors import PluginError
from bhype_core.plugin_api import hookimpl, last_backup_times
from bhype_core.runtime import build_runtime
from bhype_core.testing import make_settings

WEB, DB, OLD = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222", "3" * 36
T0 = datetime(2026, 12, 7, 3, 0, tzinfo=UTC)


class Backups:
    """A fake backup plugin answering from a fixed table; records what it was asked."""

    def __init__(self, points: dict[str, datetime] | None) -> None:
        self.points = points
        self.asked: list[list[str] | None] = []

    @hookimpl
    def bhype_vm_last_backups(self, runtime, uuids):
        self.asked.append(uuids)
        if self.points is None:
            return None
        return {uuid: when for uuid, when in self.points.items() if uuids is None or uuid in uuids}


@pytest.fixture
def runtime(tmp_path, plugin_manager):
    return build_runtime(make_settings(tmp_path / "data"), plugin_manager)


def test_no_backup_plugin_means_no_backups(runtime):
    assert last_backup_times(runtime) == {}


def test_answers_are_merged_newest_wins(runtime, register_plugin):
    local = register_plugin(Backups({WEB: T0, DB: T0 - timedelta(days=1)}), "local_backups")
    offsite = register_plugin(Backups({WEB: T0 - timedelta(hours=5), OLD: T0 + timedelta(hours=1)}), "offsite")
    register_plugin(Backups(None), "keeps_none")  # a plugin without backups answers None: ignored
    assert last_backup_times(runtime) == {WEB: T0, DB: T0 - timedelta(days=1), OLD: T0 + timedelta(hours=1)}
    assert local.asked == offsite.asked == [None]

    assert last_backup_times(runtime, [DB, WEB, DB]) == {WEB: T0, DB: T0 - timedelta(days=1)}
    assert local.asked[-1] == [WEB, DB]  # sorted, once each


def test_times_come_back_aware_utc(runtime, register_plugin):
    plus_two = timezone(timedelta(hours=2))
    register_plugin(Backups({WEB: datetime(2026, 12, 7, 5, 0, tzinfo=plus_two), DB: datetime(2026, 12, 7, 3, 0)}))
    times = last_backup_times(runtime)
    assert times == {WEB: T0, DB: T0} and all(when.tzinfo is UTC for when in times.values())


def test_an_implementation_that_ignores_uuids_answers_only_what_was_asked(runtime, register_plugin):
    class Sloppy:
        @hookimpl
        def bhype_vm_last_backups(self, runtime, uuids):
            return {WEB: T0, DB: T0}

    register_plugin(Sloppy(), "sloppy")
    assert last_backup_times(runtime, [WEB]) == {WEB: T0}


def test_a_raising_plugin_is_named(runtime, register_plugin):
    class Broken:
        @hookimpl
        def bhype_vm_last_backups(self, runtime, uuids):
            raise RuntimeError("backup table locked")

    register_plugin(Backups({WEB: T0}), "fine")
    register_plugin(Broken(), "broken_backups")
    with pytest.raises(PluginError, match=r"plugin 'broken_backups' failed in bhype_vm_last_backups: "
                                          r"RuntimeError: backup table locked"):
        last_backup_times(runtime)


@pytest.mark.parametrize("answer", [[(WEB, T0)], {WEB: "2026-12-07T03:00:00Z"}, {1: T0}])
def test_a_malformed_answer_is_refused_not_guessed(runtime, register_plugin, answer):
    class Malformed:
        @hookimpl
        def bhype_vm_last_backups(self, runtime, uuids):
            return answer

    register_plugin(Malformed(), "malformed")
    with pytest.raises(PluginError, match="bhype_vm_last_backups answered"):
        last_backup_times(runtime)
