"""MariaDB connections are pinged only after resting (issue 15): a connection used moments ago
goes straight to work, one that rested is pinged first, and one the server closed meanwhile
is replaced before the caller sees it. Real MariaDB; counted, not timed."""

from __future__ import annotations

import time

import pymysql
import pytest
import sqlalchemy
from sqlalchemy import text

from bhype_core.db.engine import PING_AFTER_IDLE, make_engine, ping_idle_connections

pytestmark = pytest.mark.mariadb


@pytest.fixture
def pings(monkeypatch):
    calls: list[int] = []
    original = pymysql.connections.Connection.ping

    def counted(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(pymysql.connections.Connection, "ping", counted)
    return calls


def test_a_connection_used_moments_ago_is_not_pinged(mariadb_url, pings):
    engine = make_engine(mariadb_url)
    try:
        for _ in range(5):
            with engine.connect() as connection:
                assert connection.execute(text("SELECT 1")).scalar() == 1
        assert pings == []  # bHype's default: PING_AFTER_IDLE seconds of rest first
        assert PING_AFTER_IDLE >= 1
    finally:
        engine.dispose()


def test_a_rested_connection_is_pinged_and_one_the_server_closed_is_replaced(mariadb_url, pings):
    engine = sqlalchemy.create_engine(mariadb_url)
    ping_idle_connections(engine, 0.2)
    try:
        with engine.connect() as connection:
            first = connection.execute(text("SELECT CONNECTION_ID()")).scalar()
        time.sleep(0.3)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT CONNECTION_ID()")).scalar() == first
        assert len(pings) == 1
        # The server ends the pooled connection while it rests (a restart, wait_timeout).
        admin = sqlalchemy.create_engine(mariadb_url)
        try:
            with admin.connect() as connection:
                connection.execute(text(f"KILL {int(first)}"))
        finally:
            admin.dispose()
        time.sleep(0.3)
        with engine.connect() as connection:  # no error reaches the caller
            assert connection.execute(text("SELECT CONNECTION_ID()")).scalar() != first
    finally:
        engine.dispose()
