"""Database fixtures of the test kit: SQLite files, fresh MariaDB databases, a migrated engine.

MariaDB is the real server (``BHYPE_TEST_MARIADB``, default ``root@127.0.0.1:3306`` with no
password). When it cannot be reached the tests that need it are skipped with the reason, except
under ``CI=true``, where they fail: CI must never pass by silently not testing MariaDB.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql
import pytest
from sqlalchemy.engine import URL, Engine, make_url
from sqlmodel import Session

from bhype_core.testing.parts import missing

MARIADB_ENV = "BHYPE_TEST_MARIADB"
DEFAULT_MARIADB = "mysql+pymysql://root@127.0.0.1:3306/"


def mariadb_server_url() -> URL:
    """The server the MariaDB fixtures create their databases on (no database part)."""
    return make_url(os.environ.get(MARIADB_ENV) or DEFAULT_MARIADB)


def _admin(server: URL) -> pymysql.connections.Connection:
    return pymysql.connect(
        host=server.host or "127.0.0.1",
        port=server.port or 3306,
        user=server.username or "root",
        password=server.password or "",
        connect_timeout=5,
        read_timeout=60,
        write_timeout=60,
        autocommit=True,
        charset="utf8mb4",
    )


class MariaDBDatabases:
    """Creates uniquely named databases on the test server and drops them again."""

    def __init__(self, server: URL) -> None:
        self.server = server
        self.created: list[str] = []

    def create(self) -> str:
        """A new empty utf8mb4 database; returns its ``mysql+pymysql://`` URL."""
        name = f"bhype_test_{os.getpid()}_{secrets.token_hex(4)}"
        with _admin(self.server) as connection, connection.cursor() as cursor:
            cursor.execute(f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci")
        self.created.append(name)
        return self.server.set(database=name).render_as_string(hide_password=False)

    def drop(self, url: str) -> None:
        """Drop the database ``url`` names (one this object created)."""
        name = make_url(url).database
        if name not in self.created:
            raise ValueError(f"{name!r} was not created by this fixture")
        with _admin(self.server) as connection, connection.cursor() as cursor:
            # A forgotten open transaction must not hang the teardown forever.
            cursor.execute("SET SESSION lock_wait_timeout = 30")
            cursor.execute(f"DROP DATABASE IF EXISTS `{name}`")
        self.created.remove(name)

    def drop_all(self) -> None:
        """Drop every database still left."""
        for name in list(self.created):
            self.drop(self.server.set(database=name).render_as_string(hide_password=False))


@pytest.fixture(scope="session")
def mariadb_databases() -> Iterator[MariaDBDatabases]:
    """Factory for fresh MariaDB databases, all dropped at the end of the session.

    Fails when the server cannot be reached, unless the run says ``--without mariadb``.
    """
    server = mariadb_server_url()
    where = server.render_as_string(hide_password=True)
    try:
        with _admin(server) as connection, connection.cursor() as cursor:
            cursor.execute("SELECT VERSION()")
    except pymysql.MySQLError as exc:
        reason = f"MariaDB not reachable at {where} (set {MARIADB_ENV}): {exc}"
        missing("mariadb", reason)
    databases = MariaDBDatabases(server)
    yield databases
    databases.drop_all()


@pytest.fixture(scope="session")
def mariadb_url(mariadb_databases: MariaDBDatabases) -> Iterator[str]:
    """URL of one fresh MariaDB database for the whole test session (dropped afterwards)."""
    url = mariadb_databases.create()
    yield url
    mariadb_databases.drop(url)


@pytest.fixture
def fresh_mariadb_url(mariadb_databases: MariaDBDatabases) -> Iterator[str]:
    """URL of a MariaDB database created for this test only (dropped afterwards)."""
    url = mariadb_databases.create()
    yield url
    mariadb_databases.drop(url)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """URL of a SQLite file (not yet created) in this test's temporary directory."""
    return f"sqlite:///{tmp_path / 'db' / 'bhype.sqlite3'}"


@pytest.fixture(params=["sqlite", pytest.param("mariadb", marks=pytest.mark.mariadb)])
def database_url(request: pytest.FixtureRequest) -> str:
    """Runs the test twice: on a SQLite file (``sqlite_url``) and on a fresh MariaDB database
    (``fresh_mariadb_url``, marked ``mariadb``)."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "fresh_mariadb_url")


@pytest.fixture
def db_engine(plugin_manager: Any, request: pytest.FixtureRequest) -> Iterator[Engine]:
    """The runtime's engine with every registered model set migrated (core tables included).

    Registers the built-in ``core_models`` plugin if the test has not, then builds
    ``bhype_runtime`` and runs :func:`bhype_core.db.migrate.upgrade`. Register your own fake
    plugins before requesting this fixture; its database is ``bhype_settings``' (SQLite under
    ``tmp_path``, or whatever a test overrides ``bhype_settings`` with).
    """
    from bhype_core.builtins import models as core_models
    from bhype_core.db.migrate import upgrade

    if not plugin_manager.is_registered(core_models) and not plugin_manager.has_plugin("core_models"):
        plugin_manager.register_plugin(core_models, "core_models")
    runtime = request.getfixturevalue("bhype_runtime")
    if "core" not in runtime.registry.models:
        raise pytest.UsageError("request db_engine before bhype_runtime, so the core tables are registered")
    upgrade(runtime)
    yield runtime.engine
    runtime.engine.dispose()


@pytest.fixture
def db_session(db_engine: Engine) -> Iterator[Session]:
    """A SQLModel session on the migrated test database; rolled back and closed afterwards."""
    with Session(db_engine) as session:
        yield session
        session.rollback()

