"""The plugin's Alembic branch ``snmp``: its tables on SQLite and MariaDB without drift, and an
engine ID that a restarted process (a new runtime on the same database) reads back unchanged."""

from __future__ import annotations

import pytest

import bhype_snmp.plugin
from bhype_core.builtins import models
from bhype_core.db import migrate
from bhype_core.runtime import build_runtime
from bhype_core.testing import make_settings
from bhype_snmp import engines


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
    assert {"snmp_0001", "snmp_0003"} <= set(migrate.upgrade(runtime))
    assert migrate.drift(runtime) == []
    assert migrate.upgrade(runtime) == []  # idempotent


def test_the_engine_id_survives_a_restart(runtime_on):
    first = runtime_on()
    migrate.upgrade(first)
    engine_id = engines.engine_id(first)
    assert engine_id[:5] == bytes.fromhex("80001f8805") and len(engine_id) == 17
    first.engine.dispose()
    again = runtime_on()  # another process on the same database
    assert engines.engine_id(again) == engine_id


def _database_at(runtime, revision):
    from alembic import command

    with migrate._ALEMBIC_LOCK, migrate._exclusive(runtime.engine) as connection:
        command.upgrade(migrate.make_config(runtime.registry, connection), revision)


def test_snmp_0002_keeps_the_senders_engine_id_and_adds_the_agents(runtime_on):
    from sqlalchemy import text

    runtime = runtime_on()
    _database_at(runtime, "snmp_0001")
    with runtime.engine.begin() as connection:
        connection.execute(text("INSERT INTO snmp_engine (engine_id, created) VALUES "
                                "('80001f880500112233445566778899aabb', '2026-12-07 00:00:00')"))
    assert "snmp_0002" in migrate.upgrade(runtime)
    assert migrate.drift(runtime) == []
    assert engines.engine_id(runtime) == bytes.fromhex("80001f880500112233445566778899aabb")  # traps unchanged
    agent = engines.next_boots(runtime)
    assert agent.engine_id != engines.engine_id(runtime) and agent.engine_id[:5] == bytes.fromhex("80001f8805")
    assert agent.boots == 1
    assert engines.next_boots(runtime)[:2] == (agent.engine_id, 2)  # RFC 3414: boots grow at every start
    assert engines.engine_id(runtime, "agent") == agent.engine_id
    runtime.engine.dispose()


def test_snmp_0003_gives_the_old_engine_ids_to_the_first_host_and_new_ones_to_the_others(runtime_on):
    from sqlalchemy import text

    runtime = runtime_on()
    _database_at(runtime, "snmp_0002")
    with runtime.engine.begin() as connection:  # what 0.3.0 stored: one row per role, shared by every host
        for engine_id, role, boots in (("80001f880500112233445566778899aabb", "notify", 0),
                                       ("80001f8805aabbccddeeff001122334455", "agent", 7),
                                       ("80001f8805999999999999999999999999", "notify", 0)):  # a lost race's row
            connection.execute(text("INSERT INTO snmp_engine (engine_id, created, role, boots) VALUES "
                                    "(:id, '2026-12-07 00:00:00', :role, :boots)"),
                               {"id": engine_id, "role": role, "boots": boots})
    assert "snmp_0003" in migrate.upgrade(runtime)
    assert migrate.drift(runtime) == []
    runtime.extras["host.name"] = "alpha"  # as [host] name = alpha would
    assert engines.engine_id(runtime).hex() == "80001f880500112233445566778899aabb"  # receivers keep working
    assert engines.next_boots(runtime, "agent")[:2] == (bytes.fromhex("80001f8805aabbccddeeff001122334455"), 8)
    beta = runtime_on()  # another host of the group, same database
    beta.extras["host.name"] = "beta"
    beta_id = engines.engine_id(beta)
    assert beta_id != engines.engine_id(runtime) and beta_id[:5] == bytes.fromhex("80001f8805")
    assert engines.engine_id(beta, "agent") != engines.engine_id(runtime, "agent")
    assert engines.next_boots(beta, "notify").boots == 1  # its own count, not alpha's
    assert engines.sender_engine_ids(beta) == {"alpha": "80001f880500112233445566778899aabb", "beta": beta_id.hex()}
    beta.engine.dispose()
    runtime.engine.dispose()


def test_processes_of_one_host_making_its_engine_id_at_once_get_the_same_one(runtime_on):
    from concurrent.futures import ThreadPoolExecutor

    from sqlmodel import select

    from bhype_core.plugin_api import session
    from bhype_snmp.models import SnmpEngine

    first = runtime_on()
    migrate.upgrade(first)
    processes = [runtime_on() for _ in range(6)]  # each its own connection pool, as separate processes
    for runtime in processes:
        runtime.extras["host.name"] = "h1"
    with ThreadPoolExecutor(len(processes)) as pool:
        made = list(pool.map(engines.engine_id, processes))
    assert len(set(made)) == 1
    with session(first) as db:
        assert len(db.exec(select(SnmpEngine).where(SnmpEngine.role == "notify")).all()) == 1
    for runtime in (first, *processes):
        runtime.engine.dispose()
