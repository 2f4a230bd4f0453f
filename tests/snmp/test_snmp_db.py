"""The plugin's Alembic branch ``snmp``: its tables on SQLite and MariaDB without drift, and an
engine ID that a restarted process (a new runtime on the same database) reads back unchanged."""

from __future__ import annotations

import pytest

import bhype_snmp.plugin
from bhype_core.builtins import models
from bhype_core.db import migrate
from bhype_core.runtime import build_runtime
from bhype_core.testing import make_settings
from bhype_snmp import managers


@pytest.fixture
def runtime_on(tmp_path, plugin_manager, register_plugin, database_url):
    register_plugin(models, "core_models")
    register_plugin(bhype_snmp.plugin, "snmp")

    def build():
        return build_runtime(make_settings(tmp_path / "data", core={"database_url": database_url}), plugin_manager)

    return build


def test_snmp_branch_creates_its_tables_without_drift(runtime_on):
    runtime = runtime_on()
    assert "snmp_0001" in migrate.pending(runtime)
    assert "snmp_0001" in migrate.upgrade(runtime)
    assert migrate.drift(runtime) == []
    assert migrate.upgrade(runtime) == []  # idempotent


def test_the_engine_id_survives_a_restart(runtime_on):
    first = runtime_on()
    migrate.upgrade(first)
    engine_id = managers.engine_id(first)
    assert engine_id[:5] == bytes.fromhex("80001f8805") and len(engine_id) == 17
    first.engine.dispose()
    again = runtime_on()  # another process on the same database
    assert managers.engine_id(again) == engine_id


def test_snmp_0002_keeps_the_senders_engine_id_and_adds_the_agents(runtime_on):
    from alembic import command
    from sqlalchemy import text

    runtime = runtime_on()
    with migrate._ALEMBIC_LOCK, migrate._exclusive(runtime.engine) as connection:  # a database at snmp_0001
        command.upgrade(migrate.make_config(runtime.registry, connection), "snmp_0001")
    with runtime.engine.begin() as connection:
        connection.execute(text("INSERT INTO snmp_engine (engine_id, created) VALUES "
                                "('80001f880500112233445566778899aabb', '2026-12-07 00:00:00')"))
    assert "snmp_0002" in migrate.upgrade(runtime)
    assert migrate.drift(runtime) == []
    assert managers.engine_id(runtime) == bytes.fromhex("80001f880500112233445566778899aabb")  # traps unchanged
    agent_id, boots = managers.next_boots(runtime)
    assert agent_id != managers.engine_id(runtime) and agent_id[:5] == bytes.fromhex("80001f8805") and boots == 1
    assert managers.next_boots(runtime) == (agent_id, 2)  # RFC 3414: boots grow at every start
    assert managers.engine_id(runtime, "agent") == agent_id
    runtime.engine.dispose()
